"""VersionedRows, behind ListConversations' kept rows, and the PostgreSQL fact it stands on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest

from parley_server.db import versioned_rows
from parley_server.db.database import Database
from parley_server.db.versioned_rows import VersionedRows
from parley_server.settings import DEFAULT_DB_SCHEMA


class Row(NamedTuple):
    id: uuid.UUID
    version: int
    text: str


def kept(limit: int) -> VersionedRows[Row]:
    return VersionedRows(limit, lambda row: (row.id, row.version))


def test_rows_are_given_only_when_every_key_is_kept_at_that_version() -> None:
    rows = kept(10)
    a, b = Row(uuid.uuid4(), 1, "a"), Row(uuid.uuid4(), 7, "b")
    rows.keep([a, b])
    assert rows.all([(b.id, 7), (a.id, 1)]) == [b, a]
    assert rows.all([(a.id, 1), (b.id, 8)]) is None  # b changed since
    assert rows.all([(a.id, 1), (uuid.uuid4(), 1)]) is None
    assert rows.all([]) == []


def test_beyond_the_limit_the_oldest_kept_are_dropped() -> None:
    rows = kept(3)
    first = [Row(uuid.uuid4(), 1, str(n)) for n in range(3)]
    rows.keep(first)
    newer = Row(uuid.uuid4(), 1, "newer")
    rows.keep([newer])
    assert rows.all([(first[0].id, 1)]) is None
    assert rows.all([(row.id, 1) for row in (*first[1:], newer)]) == [*first[1:], newer]


def test_everything_kept_is_dropped_once_it_is_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1000.0
    monkeypatch.setattr("parley_server.db.versioned_rows.time.monotonic", lambda: now)
    rows = kept(10)
    row = Row(uuid.uuid4(), 1, "a")
    rows.keep([row])
    now += versioned_rows.MAX_AGE_SECONDS - 1
    assert rows.all([(row.id, 1)]) == [row]
    now += 2
    assert rows.all([(row.id, 1)]) is None
    rows.keep([row])
    assert rows.all([(row.id, 1)]) == [row]


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
