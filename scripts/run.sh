#!/usr/bin/env bash
# Install Parley into .venv and serve it: embedded PostgreSQL unless
# DATABASE_URL is set, migrations applied at start, the web page (bundled by
# the install, hatch_build.py) and gRPC-web through Envoy on 127.0.0.1:8080.
# Needs only Python 3.11+. Extra arguments go to `parley serve` (see
# `parley serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/parley serve "$@"
