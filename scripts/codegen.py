#!/usr/bin/env python3
"""Regenerate (or check) the Python code generated from `protos/`.

grpcio-tools ships no `grpc_python_plugin` binary, so `buf generate` cannot
drive the Python generator; this script calls `grpc_tools.protoc` directly,
the way grpc's own examples do. Output goes to `clients/python/parley/`, which
is committed so that installing Parley needs no code generation step.

    python scripts/codegen.py          # regenerate
    python scripts/codegen.py --check  # exit 1 when the committed code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.resources
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PYTHON_OUT = ROOT / "clients" / "python"
GENERATED_PACKAGE = "parley"
# Hand-written modules living beside the generated ones; never touched here.
HAND_WRITTEN = {"client"}
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


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
    stale += [
        str(p)
        for p in sorted(want & have)
        if not filecmp.cmp(fresh / p, PYTHON_OUT / p, shallow=False)
    ]
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        stale = stale_paths(fresh)
        if args.check:
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


if __name__ == "__main__":
    sys.exit(main())
