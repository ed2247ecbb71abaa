"""Every server process's heartbeat in PostgreSQL, so any replica can list them all.

GetSystemHealth is answered by whichever replica the call reaches; to show
the whole cluster it reads the `replicas` table (migration 0006), where each
process keeps one row about itself:
- The row is written at start, before the process serves, and refreshed
  every `interval` seconds with its open chat streams and running
  generations; a clean exit deletes it.
- Every time is PostgreSQL's `now()`, never the process's clock, so replicas
  on machines whose clocks disagree still compare. The start time is now()
  less the process's monotonic uptime.
- Each beat also sets `expire_time`, MISSED_BEATS intervals ahead: a process
  that was killed, or cannot reach the database, stops counting as live
  then, whatever interval the reader is configured with.
- Each beat deletes the rows that expired. Rows another transaction holds
  (a replica writing its own beat, or another pruning) are skipped, so two
  pruning replicas never wait on each other, and no live row is deleted.
- A failed beat is logged and the next one runs as planned (common.periodic):
  a database restart pauses the heartbeat, it never ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from parley_server import __version__
from parley_server.common.activity import Activity
from parley_server.common.periodic import every
from parley_server.db.database import Database
from parley_server.db.models import Replica

log = logging.getLogger(__name__)

# A row is live until this many beats in a row have been missed.
MISSED_BEATS = 3
# At most this long to delete the row on exit; if the database is away, the row expires instead.
FORGET_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class ReplicaStatus:
    """One server process as GetSystemHealth lists it."""

    id: uuid.UUID
    address: str
    host: str
    pid: int
    version: str
    # PostgreSQL's clock; None only for the answering process before its first recorded beat.
    start_time: datetime | None
    heartbeat_time: datetime | None
    chat_streams: int
    generations: int
    # Whether this is the process answering (its counts are live, the others' as of their last beat).
    current: bool


class Heartbeat:
    """This process's row in `replicas`: written, refreshed, deleted, and read with the others."""

    def __init__(self, database: Database, activity: Activity, *, address: str, interval: float) -> None:
        self._db = database
        self._activity = activity
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        # Stamps of the last beat PostgreSQL recorded.
        self._start_time: datetime | None = None
        self._heartbeat_time: datetime | None = None
        self.id = uuid.uuid4()
        self.address = address
        self.host = socket.gethostname()
        self.pid = os.getpid()

    async def start(self) -> None:
        """Record this process before it serves, then keep the record fresh."""
        await self.beat()
        self._task = asyncio.create_task(every(self._interval, self.beat, "heartbeat"), name="heartbeat")

    async def stop(self) -> None:
        """Stop beating and delete the row, so the process leaves the list at once."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            async with asyncio.timeout(FORGET_TIMEOUT_SECONDS):
                async with self._db.autocommit() as conn:
                    await conn.execute(delete(Replica).where(Replica.id == self.id))
        except Exception as exc:  # the row then expires like a killed process's
            log.warning("could not delete this replica's heartbeat row: %r", exc)

    async def beat(self) -> None:
        """Insert or refresh this process's row, then delete the rows that expired."""
        now = func.now()
        values = {
            "heartbeat_time": now,
            "expire_time": now + timedelta(seconds=self._interval * MISSED_BEATS),
            "chat_streams": self._activity.chat_streams,
            "generations": self._activity.generations,
        }
        upsert = (
            insert(Replica)
            .values(
                id=self.id,
                address=self.address,
                host=self.host,
                pid=self.pid,
                version=__version__,
                start_time=now - timedelta(seconds=self._activity.uptime_seconds),
                **values,
            )
            .on_conflict_do_update(index_elements=[Replica.id], set_=values)
            .returning(Replica.start_time, Replica.heartbeat_time)
        )
        expired = select(Replica.id).where(Replica.expire_time < now).with_for_update(skip_locked=True)
        async with self._db.autocommit() as conn:
            self._start_time, self._heartbeat_time = (await conn.execute(upsert)).one()
            await conn.execute(delete(Replica).where(Replica.id.in_(expired.scalar_subquery())))

    def own_status(self) -> ReplicaStatus:
        """This process, with its counts as they are now."""
        return ReplicaStatus(
            id=self.id,
            address=self.address,
            host=self.host,
            pid=self.pid,
            version=__version__,
            start_time=self._start_time,
            heartbeat_time=self._heartbeat_time,
            chat_streams=self._activity.chat_streams,
            generations=self._activity.generations,
            current=True,
        )

    async def live_replicas(self) -> list[ReplicaStatus]:
        """Every live process, this one included (as it is now, even if its row is missing),
        by address, host and pid."""
        query = select(Replica.__table__).where(Replica.expire_time >= func.now(), Replica.id != self.id)
        async with self._db.autocommit() as conn:
            rows = list(await conn.execute(query))
        others = [
            ReplicaStatus(
                id=row.id,
                address=row.address,
                host=row.host,
                pid=row.pid,
                version=row.version,
                start_time=row.start_time,
                heartbeat_time=row.heartbeat_time,
                chat_streams=row.chat_streams,
                generations=row.generations,
                current=False,
            )
            for row in rows
        ]
        return sorted([self.own_status(), *others], key=lambda r: (r.address, r.host, r.pid, str(r.id)))
