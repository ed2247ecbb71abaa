"""Settings that live on disk: the generated JWT secret."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from parley_server.settings import ConfigError, Settings


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path)})
    secret = settings.resolved_jwt_secret()
    assert len(secret) >= 32 and settings.resolved_jwt_secret() == secret  # survives restarts
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["jwt-secret"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    """`serve --workers N` and replicas sharing a data dir on first start."""
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path)})
    with ThreadPoolExecutor(16) as pool:
        secrets = list(pool.map(lambda _: settings.resolved_jwt_secret(), range(64)))
    assert len(set(secrets)) == 1
    assert [f.name for f in tmp_path.iterdir()] == ["jwt-secret"]  # no drafts left behind


def test_a_configured_secret_must_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path), "PARLEY_JWT_SECRET": "short"}).resolved_jwt_secret()
