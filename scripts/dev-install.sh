#!/usr/bin/env bash
# Install Parley with its development tools (pytest, buf, grpcurl, ruff, mypy,
# import-linter, Node for the page) into .venv. Needs only Python 3.11+;
# scripts/test.sh and scripts/check.sh start with it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
