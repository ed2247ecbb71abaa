"""One PostgreSQL for every process of a benchmark run."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from parley_server.db.embedded import PGDATA_DIR, start_embedded_postgres
from tests.helpers.served import fresh_database


@contextlib.contextmanager
def fresh_database_url() -> Iterator[str]:
    """A fresh database on DATABASE_URL, dropped afterwards, else a fresh
    embedded PostgreSQL, deleted afterwards; its URL."""
    if os.environ.get("DATABASE_URL"):
        env, drop = fresh_database()
        try:
            yield env["DATABASE_URL"]
        finally:
            drop()
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = start_embedded_postgres(Path(tmp), cleanup="delete")
        try:
            yield url
        finally:
            # Stopped now, not at exit: pgserver tells that this process
            # started the server by a file in its data directory, which the
            # temporary directory takes with it, and would leave it running.
            import pgserver  # imported by start_embedded_postgres, after its set-up

            pgserver.get_server(Path(tmp) / PGDATA_DIR).cleanup()


def describe() -> str:
    return "a fresh database on DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded"
