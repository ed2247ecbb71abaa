"""Embedded PostgreSQL (the `pgserver` wheel) for machines with no database.

When DATABASE_URL is unset, Parley runs a real PostgreSQL 16 out of its data
directory, so a fresh machine needs nothing but Python. The server keeps its
data across restarts and is stopped when the last Parley process using it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal

from parley_server.settings import ensure_runtime_dir

log = logging.getLogger(__name__)

PGDATA_DIR = "pgdata"


def start_embedded_postgres(data_dir: Path, *, cleanup: Literal["stop", "delete"] | None = "stop") -> str:
    """Start (or join) the embedded server in data_dir/pgdata; returns an asyncpg URL."""
    ensure_runtime_dir()  # before pgserver is imported: it reads the directory then
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = data_dir / PGDATA_DIR
        pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode=cleanup)
    uri = server.get_uri()
    log.info("embedded PostgreSQL running in %s", pgdata)
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)
