#!/usr/bin/env bash
# The static gates, in seconds: ruff (lint and format), mypy, the layering
# contracts (import-linter), buf lint and buf breaking, and generated code that
# is out of date. Installs the dev tools first, as scripts/test.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-install.sh

echo "== ruff check, ruff format --check"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== import-linter contracts"
.venv/bin/lint-imports
echo "== buf lint"
.venv/bin/buf lint
echo "== buf breaking against the previous commit"
if git rev-parse --verify --quiet HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  .venv/bin/buf breaking --against '.git#ref=HEAD~1'
else
  echo "no previous commit with protos; nothing to compare"
fi
echo "== generated code is up to date"
.venv/bin/python scripts/codegen.py --check
