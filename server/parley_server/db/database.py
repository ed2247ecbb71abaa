"""The one place where database sessions are opened, committed and closed.

Domain services never build sessions themselves: they call
`Database.transaction()`, which commits when the block ends normally and rolls
back on any exception. That is what guarantees "bad input changes nothing":
a domain error raised half-way through a write leaves the database untouched.
The hottest paths skip the ORM altogether: `Database.fetch()` runs one
statement (a read, or a write chained in CTEs) on a plain asyncpg pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import asyncpg
from sqlalchemy import CursorResult, Result, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from parley_server.db.connections import ConnectionPool
from parley_server.db.outage import is_outage
from parley_server.metrics.definitions import DB_CONNECTIONS_IN_USE, DB_CONNECTIONS_WAITING

log = logging.getLogger(__name__)

T = TypeVar("T")
# How long close() lets the plain pool's idle connections close politely before cutting them off.
POOL_CLOSE_TIMEOUT_SECONDS = 5.0
# Server settings of the plain pool's connections, beyond the schema. Each of
# its statements finds its rows by keys, so one generic plan per connection
# serves any parameters. PostgreSQL's own choice compares that plan with
# plans made for the values at hand, and costs a batch statement's arrays at
# 10 elements in the generic plan: for every CreateMessage batch smaller than
# that it made a plan of its own, 1.2-2.0 ms for a statement that ran in
# 1.2-1.4. scripts/bench_unary.py --rounds 1, PostgreSQL 15, alternating
# runs: CreateMessage with a new request_id at 0.45x and 0.43x the limit
# (PostgreSQL CPU 235, 272 us a call) against 0.36x and 0.34x (343, 315 us).
PLAIN_POOL_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs too; Parley always talks asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def asyncpg_dsn(url: str) -> str:
    """The same URL as a plain libpq-style DSN, for raw asyncpg connections."""
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def schema_settings(schema: str) -> dict[str, str]:
    """Server settings of every connection Parley opens: its schema, and nothing
    else, on the search path (pg_catalog is always searched first).

    Statements stay unqualified: each finds Parley's tables, types and
    functions in the schema, and whatever they create lands there. With no
    `public` behind it, nothing can fall through to another application's
    table of the same name. The schema is a plain identifier (settings.py),
    quoted here so that even a reserved word names it.
    """
    return {"search_path": f'"{schema}"'}


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched.

    A session executes those into a CursorResult, which has the count, but
    its execute() is typed to return a plain Result: SQLAlchemy does not
    promise a CursorResult for every statement a session runs.
    """
    return cast(CursorResult[Any], result).rowcount


class Binds:
    """The positional parameters ($1, $2, ...) of a statement built for `Database.fetch`.

    Calling it with a value records the value and returns its placeholder,
    so optional clauses can be joined without counting by hand.
    """

    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _discard_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Replace a pooled connection that PostgreSQL has closed (restart, terminated backend).

    asyncpg notices the closed socket while the connection sits in the pool,
    so this check costs no round trip, unlike `pool_pre_ping`, whose extra
    query per checkout was a noticeable share of the server's CPU under load.
    Raising DisconnectionError makes the pool connect afresh.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


class CountedPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's pool for asyncio engines, keeping the gauges of connections
    in use and callers waiting (pool "sqlalchemy") at the two points every
    checkout and checkin pass: taking a connection (waiting for one, or
    connecting) and giving it back."""

    # SQLAlchemy names a pool's logger after its class; this keeps the one of the
    # pool it extends, whose INFO lines (dispose, recreate) SQLAlchemy keeps quiet.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_use = DB_CONNECTIONS_IN_USE.labels("sqlalchemy")
        self._waiting = DB_CONNECTIONS_WAITING.labels("sqlalchemy")

    def _do_get(self) -> ConnectionPoolEntry:
        self._waiting.inc()
        try:
            record = super()._do_get()
        finally:
            self._waiting.dec()
        self._in_use.inc()
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._in_use.dec()
        super()._do_return_conn(record)


class Reachability:
    """Whether PostgreSQL answers right now, and who wants to hear when that changes.

    Anything that sees the database fail for outage reasons (a pooled
    statement, the probe connection being closed by the server) reports down
    at once; only a successful probe query reports it up again. The health
    service listens, so it follows an outage within moments, not a poll later.
    """

    def __init__(self) -> None:
        self.up = True
        self._listeners: list[Callable[[bool], None]] = []

    def listen(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def report(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        if up:
            log.info("database reachable again")
        else:
            log.warning("database unreachable")
        for listener in list(self._listeners):
            listener(up)


class Database:
    """An async engine plus the session factory bound to it, and a plain asyncpg pool for hot statements,
    every connection of both working in `schema` (see schema_settings); `counted`: both pools keep
    their gauges (the process records metrics)."""

    def __init__(
        self, url: str, *, schema: str, pool_size: int = 30, pool_timeout: float = 60, counted: bool = False
    ) -> None:
        self.url = normalise_url(url)
        self.schema = schema
        # pool_size is the process's whole budget: a third of it for the
        # plain pool (its statements are short, a few connections keep up
        # with a busy event loop), the rest for the engine.
        plain_size = max(2, pool_size // 3)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=max(1, pool_size - plain_size),
            # Overflow connections are closed when given back, and a new one
            # costs a connect plus asyncpg's type introspection: keep the
            # overflow small so a busy server reuses its connections.
            max_overflow=max(2, pool_size // 3),
            # Bursts (a thousand streams starting at once) queue for a
            # connection rather than fail after the default 30 s.
            pool_timeout=pool_timeout,
            pool_recycle=1800,
            # The pools' gauges only where metrics are recorded (metrics.definitions.Uncounted).
            poolclass=CountedPool if counted else AsyncAdaptedQueuePool,
            connect_args={"server_settings": schema_settings(schema)},
        )
        event.listen(self.engine.sync_engine.pool, "checkout", _discard_if_closed)
        event.listen(self.engine.sync_engine, "handle_error", self._on_error)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.reachability = Reachability()
        self._probe_conn: asyncpg.Connection | None = None
        self._plain = ConnectionPool(
            asyncpg_dsn(self.url), plain_size, schema_settings(schema) | PLAIN_POOL_SETTINGS, counted=counted
        )

    def _on_error(self, context: Any) -> None:
        """SQLAlchemy's hook for every failed statement or connect: outages flip health at once."""
        if is_outage(context.original_exception):
            self.reachability.report(False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def fetch(self, sql: str, *args: Any, into: Callable[[asyncpg.Record], T]) -> list[T]:
        """The rows of one SQL statement, each made into a T by `into`; the statement commits on its own.

        For the hottest paths (GetConversation, ListConversations,
        CreateMessage): asyncpg prepares each distinct SQL text once per
        connection and reuses it, with none of SQLAlchemy's per-statement
        work (cache keys, parameter coercion, ORM loading, a session, the
        greenlet that bridges it, and for a lone read the BEGIN and COMMIT
        round trips of a transaction). Measured with scripts/bench_unary.py
        --workers 1 --profile (py-spy, one run each on a noisy shared
        machine): server CPU per GetConversation 2,339 -> 1,000 us,
        ListConversations' first page 3,120 -> 1,445 us, CreateMessage with
        a request_id 6,851 -> 1,460 us; SQLAlchemy's share (665, 946 and
        2,477 us) gone. Because each statement commits alone, a write here
        must be one statement (CTEs may chain several changes, atomically).
        Outages are reported to `reachability` like the engine's.
        """
        try:
            records = await self._plain.fetch(sql, args)
        except Exception as exc:
            if is_outage(exc):
                self.reachability.report(False)
            raise
        return [into(record) for record in records]

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

    async def probe(self, timeout: float) -> None:
        """One `SELECT 1` on a connection of its own (never queued behind a busy
        pool, so load is not mistaken for an outage); reports the outcome to
        `reachability`. When PostgreSQL closes that connection (a restart,
        an administrator's shutdown) it reports down at once, between probes."""
        try:
            async with asyncio.timeout(timeout):
                if self._probe_conn is None or self._probe_conn.is_closed():
                    self._probe_conn = await asyncpg.connect(asyncpg_dsn(self.url))
                    self._probe_conn.add_termination_listener(self._probe_lost)
                await self._probe_conn.fetchval("SELECT 1")
        except Exception as exc:
            if self._probe_conn is not None:
                self._probe_conn.remove_termination_listener(self._probe_lost)
                self._probe_conn.terminate()
                self._probe_conn = None
            if not is_outage(exc):
                raise
            self.reachability.report(False)
            return
        self.reachability.report(True)

    async def wait_until_reachable(self, max_delay: float = 5.0) -> None:
        """Return once PostgreSQL accepts a connection; until then log why not and retry.

        For start-up: a server started before its database (or while it
        restarts) waits instead of crashing. Errors that are not an outage,
        such as refused credentials, are raised at once.
        """
        delay = 0.5
        url = make_url(self.url)
        where = url.render_as_string(hide_password=True)
        while True:
            try:
                async with asyncio.timeout(10):
                    connection = await asyncpg.connect(asyncpg_dsn(self.url))
                await connection.close()
                return
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.warning("waiting for PostgreSQL at %s (%r); retrying in %.1f s", where, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)

    def _probe_lost(self, connection: object) -> None:
        self.reachability.report(False)

    async def close(self) -> None:
        if self._probe_conn is not None:
            self._probe_conn.remove_termination_listener(self._probe_lost)
            with contextlib.suppress(Exception):
                await self._probe_conn.close(timeout=1)
            self._probe_conn = None
        await self._plain.close(POOL_CLOSE_TIMEOUT_SECONDS)
        await self.engine.dispose()
