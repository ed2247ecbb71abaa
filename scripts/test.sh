#!/usr/bin/env bash
# Install Parley with its development tools into .venv and run the whole test
# suite with coverage. Needs only Python 3.11+; PostgreSQL is embedded unless
# DATABASE_URL names a server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
exec .venv/bin/python -m pytest --cov --cov-report=term "$@"
