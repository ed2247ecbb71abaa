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

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
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


class Database:
    """An async engine plus the session factory bound to it."""

    def __init__(self, url: str, *, pool_size: int = 20, max_overflow: int = 20, pool_timeout: float = 60) -> None:
        self.url = normalise_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            # Bursts (a thousand streams starting at once) queue for a
            # connection rather than fail after the default 30 s.
            pool_timeout=pool_timeout,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> float:
        """Round-trip a trivial query; returns the latency in seconds."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.engine.dispose()
