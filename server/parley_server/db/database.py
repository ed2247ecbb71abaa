"""The one place where database sessions are opened, committed and closed.

Domain services never build sessions themselves: they call
`Database.transaction()`, which commits when the block ends normally and rolls
back on any exception. That is what guarantees "bad input changes nothing":
a domain error raised half-way through a write leaves the database untouched.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs too; Parley always talks asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def asyncpg_dsn(url: str) -> str:
    """The same URL as a plain libpq-style DSN, for raw asyncpg connections."""
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def _discard_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Replace a pooled connection that PostgreSQL has closed (restart, terminated backend).

    asyncpg notices the closed socket while the connection sits in the pool,
    so this check costs no round trip, unlike `pool_pre_ping`, whose extra
    query per checkout was a noticeable share of the server's CPU under load.
    Raising DisconnectionError makes the pool connect afresh.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


class Database:
    """An async engine plus the session factory bound to it."""

    def __init__(self, url: str, *, pool_size: int = 30, pool_timeout: float = 60) -> None:
        self.url = normalise_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            # Overflow connections are closed when given back, and a new one
            # costs a connect plus asyncpg's type introspection: keep the
            # overflow small so a busy server reuses its connections.
            max_overflow=max(2, pool_size // 3),
            # Bursts (a thousand streams starting at once) queue for a
            # connection rather than fail after the default 30 s.
            pool_timeout=pool_timeout,
            pool_recycle=1800,
        )
        event.listen(self.engine.sync_engine.pool, "checkout", _discard_if_closed)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection on which every statement commits on its own.

        For hot counters: an upsert's row lock then lasts as long as the
        statement inside PostgreSQL, not across the round trips of a
        transaction, which a busy event loop stretches to many milliseconds
        while every other writer of that row waits.
        """
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def ping(self) -> float:
        """Round-trip a trivial query; returns the latency in seconds."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.engine.dispose()
