"""Admin statistics: indexed SQL over the rollups, cached briefly per process.

Why it stays fast on millions of messages, on any replica, cached or not:
- Per-day usage of finished UTC days is read from figures stored once per
  day in PostgreSQL (stats_rollup.py): one row per day and agent, whichever
  replica computed them. Only today, and days no request asked for before,
  are computed from `usage_daily` (an index-only scan per day), never from
  the `messages` table. The message total sums the per-conversation
  counters instead of counting message rows.
- New users per day read `users` through its create_time index, ratings
  per day and agent `message_feedback` through its update_time index (one
  row per rated answer, far fewer than messages).
- The queries are independent, so they run concurrently on separate pooled
  connections (each a consistent snapshot of its own; the set is not one
  snapshot, which dashboards do not need).
- A result is cached for CACHE_SECONDS per (start, end) widened to whole
  minutes, so dashboards polling "the last 30 days" share one computation
  (admin.proto promises "cached briefly"). Concurrent misses of one key share a single
  computation. It is the only thing a replica keeps: stored days are exact,
  since deleting usage forgets them in the deleting transaction.

Day granularity: the rollup has whole UTC days, so the usage series cover
every UTC day the range touches; new users are counted on exact timestamps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Executable, cast, func, select

from parley_server.admin.stats_rollup import day_usage
from parley_server.common.clock import utcnow
from parley_server.common.ttl_cache import TtlCache
from parley_server.common.validation import Violations
from parley_server.db.database import Database
from parley_server.db.models import Agent, Conversation, MessageFeedback, Rating, User, UserKind, UserState

CACHE_SECONDS = 30.0
CACHE_MAX_ENTRIES = 256
DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=366)
TOP_AGENTS = 10
# Bounds of a usable time: before it there is no data, after it lies overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DailyCount:
    day: date
    count: int


@dataclass(frozen=True)
class AgentDailyCount:
    day: date
    agent_id: uuid.UUID
    count: int


@dataclass(frozen=True)
class AgentDailyFeedback:
    day: date
    agent_id: uuid.UUID
    thumbs_up: int
    thumbs_down: int


@dataclass(frozen=True)
class AgentCount:
    agent_id: uuid.UUID
    agent_name: str
    message_count: int


@dataclass(frozen=True)
class Stats:
    """Current totals plus series over [start, end); see admin.proto `Stats`."""

    users_by_state: dict[UserState, int]
    total_users: int
    total_conversations: int
    total_messages: int
    new_users_per_day: list[DailyCount]
    active_users_per_day: list[DailyCount]
    messages_per_day_per_agent: list[AgentDailyCount]
    top_agents: list[AgentCount]
    compute_time: datetime
    feedback_per_day_per_agent: list[AgentDailyFeedback]


class StatsService:
    def __init__(self, database: Database, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._db = database
        self._cache: TtlCache[tuple[datetime, datetime], Stats] = TtlCache(cache_seconds, CACHE_MAX_ENTRIES)

    async def get_stats(self, start: datetime | None, end: datetime | None) -> Stats:
        """Statistics over [start, end): end defaults to now, start to 30 days before end."""
        v = Violations()
        for field, value in (("start_time", start), ("end_time", end)):
            if value is not None and not EARLIEST <= value < LATEST:
                v.add(field, f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
        v.raise_if_any()
        end = end or utcnow()
        start = start or end - DEFAULT_RANGE
        if end <= start:
            v.add("end_time", "must be after start_time")
        elif end - start > MAX_RANGE:
            v.add("end_time", f"must be at most {MAX_RANGE.days} days after start_time")
        v.raise_if_any()
        key = (_minute(start), _minute(end, up=True))
        return await self._cache.get(key, lambda: self._compute(*key))

    def clear_cache(self) -> None:
        self._cache.clear()

    async def _compute(self, start: datetime, end: datetime) -> Stats:
        first_day = start.date()
        last_day = max(start, end - timedelta(microseconds=1)).date()
        days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
        new_day = cast(func.timezone("UTC", User.create_time), Date)
        rated_day = cast(func.timezone("UTC", MessageFeedback.update_time), Date)
        compute_time = utcnow()
        states, (conversations, messages), new_users, usage, feedback = await asyncio.gather(
            # People only: service accounts are counted by ServiceAccountService's lists.
            self._rows(select(User.state, func.count()).where(User.kind == UserKind.USER).group_by(User.state)),
            self._one(
                # Messages: exact, since every write path changes message_count under the
                # conversation's row lock; one row per conversation instead of per message.
                select(func.count(), func.coalesce(func.sum(Conversation.message_count), 0))
            ),
            self._rows(
                select(new_day, func.count())
                .where(User.kind == UserKind.USER, User.create_time >= start, User.create_time < end)
                .group_by(new_day)
            ),
            day_usage(self._db, days),
            self._rows(
                select(
                    rated_day,
                    MessageFeedback.agent_id,
                    func.count().filter(MessageFeedback.rating == Rating.THUMBS_UP),
                    func.count().filter(MessageFeedback.rating == Rating.THUMBS_DOWN),
                )
                .where(MessageFeedback.update_time >= start, MessageFeedback.update_time < end)
                .group_by(rated_day, MessageFeedback.agent_id)
                .order_by(rated_day, MessageFeedback.agent_id)
            ),
        )
        users_by_state = {state: 0 for state in UserState} | {state: int(n) for state, n in states}
        new_by_day = {day: int(n) for day, n in new_users}
        per_agent_day = [
            AgentDailyCount(day, agent_id, count) for day in days for agent_id, count in usage[day].messages_by_agent
        ]
        return Stats(
            users_by_state=users_by_state,
            total_users=sum(users_by_state.values()),
            total_conversations=int(conversations),
            total_messages=int(messages),
            new_users_per_day=[DailyCount(day, new_by_day.get(day, 0)) for day in days],
            active_users_per_day=[DailyCount(day, usage[day].active_users) for day in days],
            messages_per_day_per_agent=per_agent_day,
            top_agents=await self._top_agents(per_agent_day),
            compute_time=compute_time,
            feedback_per_day_per_agent=[
                AgentDailyFeedback(day, agent_id, int(up), int(down)) for day, agent_id, up, down in feedback
            ],
        )

    async def _top_agents(self, per_agent_day: list[AgentDailyCount]) -> list[AgentCount]:
        totals: defaultdict[uuid.UUID, int] = defaultdict(int)
        for row in per_agent_day:
            totals[row.agent_id] += row.count
        top = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:TOP_AGENTS]
        if not top:
            return []
        names = dict(await self._rows(select(Agent.id, Agent.name).where(Agent.id.in_([a for a, _ in top]))))
        return [AgentCount(agent_id, names.get(agent_id, ""), count) for agent_id, count in top]

    async def _rows(self, query: Executable) -> list[Any]:
        async with self._db.transaction() as db:
            return list((await db.execute(query)).all())

    async def _one(self, query: Executable) -> Any:
        return (await self._rows(query))[0]


def _minute(value: datetime, *, up: bool = False) -> datetime:
    """value on a whole minute (UTC): the one before it, or with up, the one after."""
    floor = value.astimezone(UTC).replace(second=0, microsecond=0)
    return floor + timedelta(minutes=1) if up and floor != value else floor
