"""VersionedRows, behind ListConversations' kept pages, and the PostgreSQL fact it stands on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from parley_server.db import versioned_rows
from parley_server.db.database import Database
from parley_server.db.versioned_rows import VersionedRows
from parley_server.settings import DEFAULT_DB_SCHEMA


def test_a_value_is_given_only_under_the_key_it_was_kept_under() -> None:
    kept: VersionedRows[str] = VersionedRows(10)
    a, b = uuid.uuid4(), uuid.uuid4()
    kept.keep(f"{a}/1 {b}/7", "page")
    assert kept.get(f"{a}/1 {b}/7") == "page"
    assert kept.get(f"{a}/1 {b}/8") is None  # b changed since
    assert kept.get(f"{a}/1") is None  # b is gone from the page


def test_beyond_the_limit_the_oldest_kept_are_dropped() -> None:
    kept: VersionedRows[int] = VersionedRows(3)
    for n in range(4):
        kept.keep(n, n)
    assert kept.get(0) is None
    assert [kept.get(n) for n in (1, 2, 3)] == [1, 2, 3]


def test_everything_kept_is_dropped_once_it_is_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1000.0
    monkeypatch.setattr("parley_server.db.versioned_rows.time.monotonic", lambda: now)
    kept: VersionedRows[str] = VersionedRows(10)
    kept.keep("k", "value")
    now += versioned_rows.MAX_AGE_SECONDS - 1
    assert kept.get("k") == "value"
    now += 2
    assert kept.get("k") is None
    kept.keep("k", "value")
    assert kept.get("k") == "value"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, schema=DEFAULT_DB_SCHEMA, pool_size=3)
    yield db
    await db.close()


async def test_xmin_changes_with_every_update_and_not_with_a_row_lock(database: Database) -> None:
    """What the kept rows rely on, checked on the PostgreSQL the suite runs on."""
    table = f"public.versions_{uuid.uuid4().hex}"
    await database.fetch(f"CREATE TABLE {table} (id int PRIMARY KEY, a text, b int)", into=tuple)
    try:

        async def xmin() -> int:
            (found,) = await database.fetch(f"SELECT xmin FROM {table} WHERE id = 1", into=lambda r: int(r[0]))
            return found

        await database.fetch(f"INSERT INTO {table} VALUES (1, 'x', 0)", into=tuple)
        seen = [await xmin()]
        for change in ("a = 'y'", "b = b + 1", "a = a"):  # the last changes no value, yet writes a new version
            await database.fetch(f"UPDATE {table} SET {change} WHERE id = 1", into=tuple)
            seen.append(await xmin())
        assert len(set(seen)) == len(seen), seen
        await database.fetch(f"SELECT 1 FROM {table} WHERE id = 1 FOR UPDATE", into=tuple)
        assert await xmin() == seen[-1]
    finally:
        await database.fetch(f"DROP TABLE {table}", into=tuple)
