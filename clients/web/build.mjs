// Bundle the page into the server package (server/parley_server/bridge/static),
// where `parley serve` finds it in a checkout and in a wheel alike: app.js
// (all TypeScript and the runtime libraries, minified), app.css, index.html;
// and the REST API's reference page, /docs: docs.js (Swagger UI), docs.css,
// docs.html.
// Prints the sizes, raw and gzip, because the bundle size is a number the
// README keeps. `pip install` runs this (hatch_build.py).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "..", "server", "parley_server", "bridge", "static");

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
await build({
  // main.ts imports styles.css, so esbuild writes app.css beside app.js.
  entryPoints: { app: join(here, "src/main.ts"), docs: join(here, "src/docs/main.ts") },
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(outdir, "index.html"));
copyFileSync(join(here, "src/docs/index.html"), join(outdir, "docs.html"));

for (const name of ["app.js", "app.css", "index.html", "docs.js", "docs.css", "docs.html"]) {
  const bytes = readFileSync(join(outdir, name));
  const kb = (n) => (n / 1024).toFixed(1) + " KB";
  console.log(`static/${name.padEnd(10)} ${kb(bytes.length).padStart(9)} raw ${kb(gzipSync(bytes, { level: 9 }).length).padStart(9)} gzip`);
}
