"""Database.fetch's pool: bounded, queueing, and whole again after cancelled calls and killed connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from parley_server.db.database import Database, asyncpg_dsn
from parley_server.db.outage import is_outage
from parley_server.settings import DEFAULT_DB_SCHEMA

POOL_SIZE = 6  # the plain pool gets a third: 2 connections


def pid(record: asyncpg.Record) -> int:
    return int(record[0])


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, schema=DEFAULT_DB_SCHEMA, pool_size=POOL_SIZE)
    yield db
    await db.close()


async def test_callers_beyond_the_pool_queue_and_all_get_answers(database: Database) -> None:
    answers = await asyncio.gather(
        *(database.fetch("SELECT pg_backend_pid() FROM pg_sleep(0.05)", into=pid) for _ in range(20))
    )
    assert len(answers) == 20
    assert len({p for (p,) in answers}) == 2


async def test_cancelled_calls_give_their_connections_back(database: Database) -> None:
    sleepers = [asyncio.ensure_future(database.fetch("SELECT pg_sleep(30)", into=pid)) for _ in range(4)]
    await asyncio.sleep(0.3)  # two run, two queue
    for sleeper in sleepers:
        sleeper.cancel()
    await asyncio.gather(*sleepers, return_exceptions=True)
    async with asyncio.timeout(20):  # a lost connection slot would hang here
        answers = await asyncio.gather(*(database.fetch("SELECT pg_backend_pid()", into=pid) for _ in range(10)))
    assert len({p for (p,) in answers}) <= 2


async def test_connections_killed_by_postgresql_are_replaced(database: Database) -> None:
    (before,) = await database.fetch("SELECT pg_backend_pid()", into=pid)
    admin = await asyncpg.connect(asyncpg_dsn(database.url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", before)
    finally:
        await admin.close()
    deadline = time.monotonic() + 20
    while True:  # the first call may still meet the dying connection: an outage, retried like a client would
        try:
            (after,) = await database.fetch("SELECT pg_backend_pid()", into=pid)
            break
        except Exception as exc:
            assert is_outage(exc), repr(exc)
            assert time.monotonic() < deadline, "the pool never recovered"
            await asyncio.sleep(0.05)
    assert after != before
