"""Admin's tables: the stored statistics of finished days (see admin/stats_rollup.py)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley_server.db.models.base import Base


class StatsDay(Base):
    """Per finished UTC day: the distinct users who sent messages (GetStats).

    A stored copy of what usage_daily says about a day that is over, shared
    by every replica (see admin/stats_rollup.py). Distinct users cannot be
    summed over agents, so they are kept per day. A trigger on usage_daily
    (migration 0005) deletes the days whose usage rows are deleted.
    """

    __tablename__ = "stats_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    active_users: Mapped[int] = mapped_column(BigInteger)


class StatsDayAgent(Base):
    """Per finished UTC day and agent: messages sent; only agents with messages.

    Goes with its StatsDay row, so a day is stored whole or not at all. No key
    to agents: a derived row, forgotten with its day when usage rows go.
    """

    __tablename__ = "stats_day_agent"

    day: Mapped[date] = mapped_column(ForeignKey("stats_day.day", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger)
