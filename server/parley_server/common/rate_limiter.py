"""Fixed-window rate limits with their counters in PostgreSQL.

Counters live in the database, not in process memory, so a limit holds across
replicas and restarts: an attacker gains nothing by spreading attempts over
servers or waiting for a deploy. One upsert per counted event keeps it cheap.
Each refusal counts in parley_rate_limit_refusals_total, by the limit's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from parley_server.common.clock import utcnow
from parley_server.common.errors import Reason, ResourceExhausted
from parley_server.db.models import RateLimitCounter
from parley_server.metrics.definitions import RATE_LIMIT_REFUSALS


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
        return (await self._count(db, limit, key))[0]

    async def hit_and_check(self, db: AsyncSession | AsyncConnection, limit: Limit, key: str, message: str) -> None:
        """Count one event and fail when it goes over the limit.

        One statement, so it may run on an autocommit connection (a hot
        counter's row lock then lasts only as long as the statement).
        """
        count, started = await self._count(db, limit, key)
        if count > limit.limit:
            raise _refusal(limit, message, started + limit.window - utcnow())

    async def _count(self, db: AsyncSession | AsyncConnection, limit: Limit, key: str) -> tuple[int, datetime]:
        """Count one event; returns the count and the start of the current window."""
        now = utcnow()
        table = RateLimitCounter.__table__
        expired = table.c.window_start + limit.window <= literal(now)
        stmt = (
            insert(RateLimitCounter)
            .values(key=f"{limit.name}:{key}", window_start=now, count=1)
            .on_conflict_do_update(
                index_elements=[RateLimitCounter.key],
                set_={
                    "count": case((expired, 1), else_=table.c.count + 1),
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
