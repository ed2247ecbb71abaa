// Bundle the page into dist/: app.js (all TypeScript and the runtime
// libraries, minified), app.css, index.html. Prints the sizes, raw and gzip,
// because the bundle size is a number the README keeps.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  // main.ts imports styles.css, so esbuild writes app.css beside app.js.
  entryPoints: { app: join(here, "src/main.ts") },
  outdir: dist,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(dist, "index.html"));

for (const name of ["app.js", "app.css", "index.html"]) {
  const bytes = readFileSync(join(dist, name));
  const kb = (n) => (n / 1024).toFixed(1) + " KB";
  console.log(`dist/${name.padEnd(10)} ${kb(bytes.length).padStart(9)} raw ${kb(gzipSync(bytes, { level: 9 }).length).padStart(9)} gzip`);
}
