"""One PostgreSQL for every process of a benchmark run."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from parley_server.db.embedded import start_embedded_postgres
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
        yield start_embedded_postgres(Path(tmp), cleanup="delete")


def describe() -> str:
    return "a fresh database on DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded"
