"""Deleting rows whose purpose has passed, so tables that grow with traffic stay bounded.

Rate-limit counters (one per email or client address ever seen), ended
sessions with their refresh tokens, expired email tokens and invites, and
old request ids would otherwise grow forever; a flood of failed logins with
made-up emails would grow them fast. Each serving process runs a round
every `interval` seconds; a transaction-level advisory lock lets one replica
do a round while the others skip it, so replicas do not repeat the work.

What is deleted was already useless, so nothing a client relies on changes:
- a counter whose window ended longer ago than the longest limit's window;
- a session expired or revoked for more than RETENTION (its tokens already
  fail; their refresh tokens go with it);
- an email token or invite expired for more than RETENTION;
- a request id (AIP-155) older than REQUEST_ID_RETENTION: retrying a create
  a week later creates a new resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import delete, func, or_, select

from parley_server.common.clock import utcnow
from parley_server.common.periodic import every
from parley_server.db.database import Database, rowcount
from parley_server.db.locks import HOUSEKEEPING_LOCK_KEY, scoped
from parley_server.db.models import EmailToken, IdempotencyKey, Invite, RateLimitCounter, Session

log = logging.getLogger(__name__)

RETENTION = timedelta(days=1)
REQUEST_ID_RETENTION = timedelta(days=7)


class Housekeeping:
    def __init__(self, database: Database, *, rate_limit_horizon: timedelta, interval: float) -> None:
        self._db = database
        self._rate_limit_horizon = rate_limit_horizon
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(every(self._interval, self.run_once, "housekeeping"), name="housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> dict[str, int] | None:
        """Delete what has expired; rows deleted per table, or None if another replica is at it."""
        now = utcnow()
        statements = {
            "rate_limit_counters": delete(RateLimitCounter).where(
                RateLimitCounter.window_start < now - self._rate_limit_horizon
            ),
            "sessions": delete(Session).where(
                or_(Session.expire_time < now - RETENTION, Session.revoke_time < now - RETENTION)
            ),
            "email_tokens": delete(EmailToken).where(EmailToken.expire_time < now - RETENTION),
            "invites": delete(Invite).where(Invite.expire_time < now - RETENTION),
            "idempotency_keys": delete(IdempotencyKey).where(IdempotencyKey.create_time < now - REQUEST_ID_RETENTION),
        }
        async with self._db.transaction() as db:
            if not await db.scalar(select(func.pg_try_advisory_xact_lock(scoped(HOUSEKEEPING_LOCK_KEY)))):
                return None
            deleted = {}
            for table, statement in statements.items():
                result = await db.execute(statement.execution_options(synchronize_session=False))
                deleted[table] = rowcount(result)
        if any(deleted.values()):
            log.info("housekeeping deleted %s", ", ".join(f"{n} {table}" for table, n in deleted.items() if n))
        return deleted
