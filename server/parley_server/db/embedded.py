"""Embedded PostgreSQL (the `pgserver` wheel) for machines with no database.

When DATABASE_URL is unset, Parley runs a real PostgreSQL 16 out of its data
directory, so a fresh machine needs nothing but Python. The server keeps its
data across restarts and is stopped when the last Parley process using it exits.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

PGDATA_DIR = "pgdata"


def start_embedded_postgres(data_dir: Path, *, cleanup: Literal["stop", "delete"] | None = "stop") -> str:
    """Start (or join) the embedded server in data_dir/pgdata; returns an asyncpg URL."""
    # pgserver reads platformdirs' runtime dir for its lock file; without
    # XDG_RUNTIME_DIR that only warns and falls back to /tmp, which is fine.
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = data_dir / PGDATA_DIR
        pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode=cleanup)
    uri = server.get_uri()
    log.info("embedded PostgreSQL running in %s", pgdata)
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)
