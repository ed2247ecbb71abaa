"""Per-day usage figures for GetStats, stored once per finished UTC day and shared by replicas.

Why: a day's figures (distinct active users, messages per agent) take a scan
of its ~thousands of usage_daily rows, and a 90-day range read 200k+ rows on
every uncached request. Rows of a UTC day that is over no longer change
(usage is always recorded on the current UTC day), so each finished day is
computed once, stored in `stats_day` / `stats_day_agent` (migration 0005),
and from then on read as one row per day and agent, by every replica.

The rules that keep the stored figures equal to what usage_daily says:
- Only days over for SETTLE are stored; later days, today above all, are
  read live from usage_daily on every request. The margin covers a usage
  write that took its day just before midnight and commits just after, and
  clocks of replicas that differ a little.
- A missing day is computed and stored by one statement (day row and agent
  rows together, or neither), with ON CONFLICT DO NOTHING: replicas filling
  the same day at once store it once, and never add to a stored figure.
- Deleting usage rows forgets their days in the deleting transaction,
  through a trigger on usage_daily (migration 0005), so no code path can
  forget to: DeleteUser and DeleteAccount delete them by cascade, as would
  any other DELETE or TRUNCATE. (DeleteAgent is a soft delete that keeps the
  agent's usage history, so its days stay as they are.) The trigger takes
  STATS_LOCK_KEY exclusively and fills hold it shared: a fill that read the
  rows before the delete committed is stored first, then deleted with the
  rest, never stored after it.
- Past days' rows are otherwise never written; a bulk load into past days
  (a seed) must come before their figures are first asked for, or be
  followed by `DELETE FROM stats_day`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import BigInteger, Date, TextualSelect, func, select, text
from sqlalchemy.dialects.postgresql import UUID

from parley_server.common.clock import utcnow
from parley_server.db.database import Database
from parley_server.db.locks import STATS_LOCK_KEY, scoped

SETTLE = timedelta(minutes=10)
# Missing days are computed in this many concurrent parts (connections): a
# day's scan runs on one core, and a fully cold range has up to 366 of them.
FILL_PARTS = 4

# Per wanted day: its active users (distinct users with messages; a user of
# two agents counts once) and, one row per agent with messages, their sum;
# a day without messages gives one row with a NULL agent. Each day is an
# index-only scan of ix_usage_daily_day_user: users come out in order, so the
# distinct count needs no sort or hash, and one day's rows are few enough
# for the planner to choose that scan at the default random_page_cost.
FIGURES = """
    SELECT d.day, a.active_users, m.agent_id, m.messages
    FROM unnest(CAST(:days AS date[])) AS d(day)
    CROSS JOIN LATERAL (
        SELECT count(*) AS active_users FROM (
            SELECT DISTINCT u.user_id FROM usage_daily u WHERE u.day = d.day AND u.message_count > 0
        ) AS active
    ) AS a
    LEFT JOIN LATERAL (
        SELECT u.agent_id, sum(u.message_count) AS messages FROM usage_daily u
        WHERE u.day = d.day AND u.message_count > 0
        GROUP BY u.agent_id
    ) AS m ON true
"""

# Stores the days nobody stored meanwhile (agent rows only with a day row
# this statement inserted) and returns the figures it computed. They equal
# what another replica may have stored first: no delete of usage rows can
# commit while fills hold the lock. Day rows go in in day order, so fills
# of overlapping ranges wait for one another's days in one order, never in
# a deadlock.
FILL = f"""
    WITH figures AS ({FIGURES}),
    stored AS (
        INSERT INTO stats_day (day, active_users)
        SELECT DISTINCT day, active_users FROM figures ORDER BY day
        ON CONFLICT (day) DO NOTHING
        RETURNING day
    ),
    agents AS (
        INSERT INTO stats_day_agent (day, agent_id, messages)
        SELECT f.day, f.agent_id, f.messages FROM figures f JOIN stored s ON s.day = f.day
        WHERE f.agent_id IS NOT NULL
    )
    SELECT day, active_users, agent_id, messages FROM figures
"""

STORED = """
    SELECT d.day, d.active_users, a.agent_id, a.messages
    FROM stats_day d LEFT JOIN stats_day_agent a ON a.day = d.day
    WHERE d.day BETWEEN :first AND :last
"""


def _query(sql: str) -> TextualSelect:
    """sql, whose rows are (day, active users, agent id or NULL, messages or NULL)."""
    return text(sql).columns(day=Date, active_users=BigInteger, agent_id=UUID(as_uuid=True), messages=BigInteger)


@dataclass(frozen=True)
class DayUsage:
    """What usage_daily says about one UTC day."""

    active_users: int
    # (agent id, messages), by agent id; only agents with messages.
    messages_by_agent: tuple[tuple[uuid.UUID, int], ...]


async def day_usage(database: Database, days: Sequence[date]) -> dict[date, DayUsage]:
    """DayUsage of each of days (ascending): stored when finished (stored now
    if missing), live from usage_daily otherwise."""
    open_from = (utcnow() - SETTLE).date()
    finished = [day for day in days if day < open_from]
    live = [day for day in days if day >= open_from]
    stored, current = await asyncio.gather(_stored(database, finished), _live(database, live))
    missing = [day for day in finished if day not in stored]
    filled = await asyncio.gather(*(_fill(database, part) for part in _parts(missing, FILL_PARTS)))
    for part in filled:
        stored |= part
    return stored | current


async def _stored(database: Database, days: list[date]) -> dict[date, DayUsage]:
    if not days:
        return {}
    async with database.transaction() as db:
        rows = (await db.execute(_query(STORED), {"first": days[0], "last": days[-1]})).all()
    return _usage(rows)


async def _live(database: Database, days: list[date]) -> dict[date, DayUsage]:
    if not days:
        return {}
    async with database.transaction() as db:
        return _usage((await db.execute(_query(FIGURES), {"days": days})).all())


async def _fill(database: Database, days: list[date]) -> dict[date, DayUsage]:
    async with database.transaction() as db:
        # Its own statement: FILL's snapshot must be taken once the lock is held.
        await db.execute(select(func.pg_advisory_xact_lock_shared(scoped(STATS_LOCK_KEY))))
        return _usage((await db.execute(_query(FILL), {"days": days})).all())


def _usage(rows: Sequence[Any]) -> dict[date, DayUsage]:
    """The rows of a _query by day."""
    active: dict[date, int] = {}
    messages: defaultdict[date, list[tuple[uuid.UUID, int]]] = defaultdict(list)
    for day, users, agent_id, count in rows:
        active[day] = int(users)
        if agent_id is not None:
            messages[day].append((agent_id, int(count)))
    return {day: DayUsage(users, tuple(sorted(messages[day]))) for day, users in active.items()}


def _parts(days: list[date], parts: int) -> list[list[date]]:
    """days in at most `parts` runs of consecutive entries, as even as can be."""
    if not days:
        return []
    size = -(-len(days) // parts)
    return [days[n : n + size] for n in range(0, len(days), size)]
