"""The replicas table: one row per running server process (admin/replicas.py writes and reads it)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from parley_server.db.models.base import Base


class Replica(Base):
    """A server process's heartbeat, so any replica can list all of them (GetSystemHealth).

    Each process inserts its row at start, refreshes it every heartbeat
    interval and deletes it on a clean exit. Times are PostgreSQL's, so the
    clocks of the replicas' machines do not matter. A process that dies
    without deleting its row stops refreshing it: once `expire_time` (set by
    the process itself, a few intervals after each beat) has passed, the row
    counts as not live and any replica's heartbeat deletes it.
    """

    __tablename__ = "replicas"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(300))
    host: Mapped[str] = mapped_column(String(300))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(100))
    start_time: Mapped[datetime]
    heartbeat_time: Mapped[datetime]
    expire_time: Mapped[datetime]
    chat_streams: Mapped[int] = mapped_column(Integer)
    generations: Mapped[int] = mapped_column(Integer)
