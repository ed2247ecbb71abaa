"""Fixed-window rate limits with their counters in PostgreSQL.

Counters live in the database, not in process memory, so a limit holds across
replicas and restarts: an attacker gains nothing by spreading attempts over
servers or waiting for a deploy. One upsert per counted event keeps it cheap;
for events as frequent as every call of an API key, `BufferedLimit` writes
them in batches.
Each refusal counts in parley_rate_limit_refusals_total, by the limit's name.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from parley_server.common.clock import utcnow
from parley_server.common.errors import Reason, ResourceExhausted
from parley_server.db.database import Database
from parley_server.db.models import RateLimitCounter
from parley_server.metrics.definitions import RATE_LIMIT_REFUSALS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """At most `limit` events per `window` for one key."""

    name: str
    limit: int
    window: timedelta


class RateLimiter:
    """Check and count events against a Limit."""

    async def check(self, db: AsyncSession, limit: Limit, key: str, message: str) -> None:
        """Raise RESOURCE_EXHAUSTED (with the wait) when key has used up its window."""
        counter = await db.get(RateLimitCounter, f"{limit.name}:{key}")
        now = utcnow()
        if counter is None or counter.window_start + limit.window <= now:
            return
        if counter.count >= limit.limit:
            raise _refusal(limit, message, counter.window_start + limit.window - now)

    async def hit(self, db: AsyncSession | AsyncConnection, limit: Limit, key: str) -> int:
        """Count one event; returns the count in the current window."""
        return (await self.add(db, limit, key))[0]

    async def hit_and_check(self, db: AsyncSession | AsyncConnection, limit: Limit, key: str, message: str) -> None:
        """Count one event and fail when it goes over the limit.

        One statement, so it may run on an autocommit connection (a hot
        counter's row lock then lasts only as long as the statement).
        """
        count, started = await self.add(db, limit, key)
        if count > limit.limit:
            raise _refusal(limit, message, started + limit.window - utcnow())

    async def add(
        self, db: AsyncSession | AsyncConnection, limit: Limit, key: str, events: int = 1
    ) -> tuple[int, datetime]:
        """Count events; returns the count and the start of the current window."""
        now = utcnow()
        table = RateLimitCounter.__table__
        expired = table.c.window_start + limit.window <= literal(now)
        stmt = (
            insert(RateLimitCounter)
            .values(key=f"{limit.name}:{key}", window_start=now, count=events)
            .on_conflict_do_update(
                index_elements=[RateLimitCounter.key],
                set_={
                    "count": case((expired, events), else_=table.c.count + events),
                    "window_start": case((expired, now), else_=table.c.window_start),
                },
            )
            .returning(RateLimitCounter.count, RateLimitCounter.window_start)
        )
        count, started = (await db.execute(stmt)).one()
        return int(count), started

    async def release(self, db: AsyncSession, limit: Limit, key: str) -> None:
        """Take back one event counted by `hit` that turned out not to count."""
        await db.execute(
            update(RateLimitCounter)
            .where(RateLimitCounter.key == f"{limit.name}:{key}", RateLimitCounter.count > 0)
            .values(count=RateLimitCounter.count - 1)
        )

    async def reset(self, db: AsyncSession, limit: Limit, key: str) -> None:
        await db.execute(delete(RateLimitCounter).where(RateLimitCounter.key == f"{limit.name}:{key}"))


def _refusal(limit: Limit, message: str, retry_after: timedelta) -> ResourceExhausted:
    """The error refusing an event over `limit`, counted."""
    RATE_LIMIT_REFUSALS.labels(limit.name).inc()
    return ResourceExhausted(message, retry_after=retry_after, reason=Reason.RATE_LIMITED)


@dataclass
class _Tally:
    """What one replica knows of a key's window."""

    known: int  # the count in PostgreSQL when this replica last wrote it
    window_end: datetime
    pending: int = 0  # events admitted here since, not written yet


class BufferedLimit:
    """A Limit on frequent events (every call of an API key), with the counters
    still in PostgreSQL but not one write per event.

    One upsert per call cost a third of a key's call rate. Here a replica
    decides from what it knows: the window's shared count as of its last
    write, plus the events it admitted since. A key's first event in a window
    is written at once, so a replica learns the shared count before it admits
    more; later events are written every `flush_seconds`, one statement per
    key. So each replica may admit the events of one flush interval beyond the
    limit before it learns of the others': with N replicas, the overshoot is at
    most N times the events of one interval.
    """

    def __init__(self, database: Database, limiter: RateLimiter, limit: Limit, *, flush_seconds: float) -> None:
        self._db = database
        self._limiter = limiter
        self.limit = limit
        self._flush_seconds = flush_seconds
        self._tallies: dict[str, _Tally] = {}
        self._flushing: asyncio.Task[None] | None = None

    async def hit(self, key: str, message: str) -> None:
        """Count one event of key; RESOURCE_EXHAUSTED (with the wait) when over the limit."""
        now = utcnow()
        tally = self._tallies.get(key)
        if tally is None or tally.window_end <= now:
            async with self._db.autocommit() as conn:
                count, started = await self._limiter.add(conn, self.limit, key)
            tally = self._tallies.setdefault(key, _Tally(0, now))
            tally.known, tally.window_end = count, started + self.limit.window
            if count > self.limit.limit:
                raise _refusal(self.limit, message, tally.window_end - now)
            return
        if tally.known + tally.pending >= self.limit.limit:
            raise _refusal(self.limit, message, tally.window_end - now)
        tally.pending += 1
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._flush_seconds)
        try:
            await self.flush()
        except Exception:  # the database away: the events stay pending for the next try
            log.warning("could not write rate-limit counts of %s; retrying", self.limit.name, exc_info=True)
        finally:
            self._flushing = None
        if any(tally.pending for tally in self._tallies.values()):
            self._flushing = asyncio.create_task(self._flush_soon())

    async def flush(self) -> None:
        """Write the pending events, learn the shared counts, forget ended windows."""
        now = utcnow()
        for key in [key for key, tally in self._tallies.items() if not tally.pending and tally.window_end <= now]:
            del self._tallies[key]
        batch = {key: tally.pending for key, tally in self._tallies.items() if tally.pending}
        if not batch:
            return
        async with self._db.autocommit() as conn:
            for key, events in batch.items():
                count, started = await self._limiter.add(conn, self.limit, key, events)
                tally = self._tallies[key]
                tally.pending -= events
                tally.known, tally.window_end = count, started + self.limit.window

    async def aclose(self) -> None:
        """Write what is pending, so a stopping replica's events still count."""
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        try:
            await self.flush()
        except Exception:
            log.warning("could not write the last rate-limit counts of %s", self.limit.name, exc_info=True)
