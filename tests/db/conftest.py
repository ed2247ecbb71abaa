"""Fixtures of the database tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.pg_cluster import PgCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PgCluster]:
    """A PostgreSQL server of the test's own, which a test may stop, restart or break."""
    pg = PgCluster(tmp_path / "pg").init()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()
