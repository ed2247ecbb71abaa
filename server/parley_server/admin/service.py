"""AdminService rules: user management, the waitlist, statistics, system health.

Properties this module keeps:
- The last active administrator cannot be demoted, disabled or deleted. Every
  operation that can remove an active admin takes one transaction-scoped
  advisory lock before counting the others, so two admins demoting each
  other at once are serialised and the second sees the first's result.
- A change of role, state or premium reaches the session cache of this
  replica at once (`SessionService.forget_user`, after commit); locking an
  account out also revokes its sessions, so its tokens stop working.
- Waitlist approval is all-or-nothing in the database and sends its emails
  only after the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server import __version__
from parley_server.accounts.admin_guard import ensure_another_active_admin, is_active_admin, lock_admin_guard
from parley_server.accounts.auth_service import AuthService
from parley_server.accounts.session_service import LOCKED_OUT_STATES, SessionService
from parley_server.admin.replicas import Heartbeat, ReplicaStatus
from parley_server.admin.stats_service import Stats, StatsService
from parley_server.common.activity import Activity
from parley_server.common.caller import Caller
from parley_server.common.clock import utcnow
from parley_server.common.errors import NotFound, Reason
from parley_server.common.pagination import Page, Paginator, newest_first, time_id_keyset
from parley_server.common.validation import MAX_DISPLAY_NAME_LENGTH, MAX_EMAIL_LENGTH, Violations, only_uuid
from parley_server.conversations.service import DEFAULT_EMPTY_AGE, ConversationService
from parley_server.db.database import Database
from parley_server.db.models import Role, User, UserKind, UserState, WaitlistEntry

log = logging.getLogger(__name__)

USER_PATHS = {"role", "state", "premium", "display_name"}
# Paths whose change can take away an active administrator.
GUARDED_PATHS = {"role", "state"}
MAX_APPROVALS = 100
PING_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class UserFilter:
    """ListUsers filters: empty / None means "any"."""

    email_contains: str = ""
    role: Role | None = None
    state: UserState | None = None
    premium: bool | None = None


@dataclass(frozen=True)
class UserChanges:
    """UpdateUser values; only the fields named by the update mask are read."""

    role: Role | None = None
    state: UserState | None = None
    premium: bool = False
    display_name: str = ""


@dataclass(frozen=True)
class WaitlistItem:
    entry: WaitlistEntry
    # 1-based among entries not yet approved; 0 once approved.
    position: int


@dataclass(frozen=True)
class SystemHealth:
    database_reachable: bool
    database_latency: timedelta | None
    uptime: timedelta
    version: str
    active_chat_streams: int
    active_generations: int
    # Every live replica, this one included (see admin.replicas).
    replicas: list[ReplicaStatus]


class AdminService:
    def __init__(
        self,
        database: Database,
        paginator: Paginator,
        sessions: SessionService,
        auth: AuthService,
        conversations: ConversationService,
        *,
        activity: Activity,
        heartbeat: Heartbeat,
    ) -> None:
        self._db = database
        self._paginator = paginator
        self._sessions = sessions
        self._auth = auth
        self._conversations = conversations
        self._stats = StatsService(database)
        self._activity = activity
        self._heartbeat = heartbeat

    # -- users ----------------------------------------------------------------

    async def list_users(self, page_size: int, page_token: str, where: UserFilter) -> Page[User]:
        """Users newest first, keyset-paginated on (create_time, id)."""
        v = Violations()
        size = Paginator.page_size(v, page_size)
        contains = v.text("email_contains", where.email_contains, max_length=MAX_EMAIL_LENGTH).lower()
        v.raise_if_any()
        role, state = (where.role.value if where.role else None), (where.state.value if where.state else None)
        scope = json.dumps(["ListUsers", contains, role, state, where.premium])
        keyset = self._paginator.decode(v, page_token, scope, 2)
        v.raise_if_any()
        query = select(User).where(User.kind == UserKind.USER)
        if contains:
            query = query.where(User.email.icontains(contains, autoescape=True))
        if where.role is not None:
            query = query.where(User.role == where.role)
        if where.state is not None:
            query = query.where(User.state == where.state)
        if where.premium is not None:
            query = query.where(User.premium == where.premium)
        query = newest_first(query, User.create_time, User.id, keyset, size)
        async with self._db.transaction() as db:
            rows = list((await db.execute(query)).scalars())
        return self._paginator.page(rows, size, scope, lambda u: time_id_keyset(u.create_time, u.id))

    async def get_user(self, user_id: str) -> User:
        uid = only_uuid("user_id", user_id)
        async with self._db.transaction() as db:
            return await _require_user(db, uid)

    async def update_user(self, caller: Caller, user_id: str, paths: list[str], changes: UserChanges) -> User:
        """Apply the masked changes; see the module docstring for the guard and the session rules."""
        v = Violations()
        uid = v.uuid("user.id", user_id)
        paths = v.update_mask(paths, USER_PATHS)
        display_name = (
            v.text("user.display_name", changes.display_name, max_length=MAX_DISPLAY_NAME_LENGTH)
            if "display_name" in paths
            else ""
        )
        for path, value in (("role", changes.role), ("state", changes.state)):
            if path in paths and value is None:
                v.add(f"user.{path}", "must be set (UNSPECIFIED is not a value)")
        v.raise_if_any()
        assert uid is not None
        async with self._db.transaction() as db:
            if GUARDED_PATHS & set(paths):
                await lock_admin_guard(db)
            user = await _require_user(db, uid, for_update=True)
            role = changes.role if "role" in paths else user.role
            state = changes.state if "state" in paths else user.state
            assert role is not None and state is not None
            if is_active_admin(user) and (role is not Role.ADMIN or state is not UserState.ACTIVE):
                await ensure_another_active_admin(db, user.id)
            if "state" in paths and state in LOCKED_OUT_STATES:
                await self._sessions.revoke_all(db, user.id)
            user.role, user.state = role, state
            if "premium" in paths:
                user.premium = changes.premium
            if "display_name" in paths:
                user.display_name = display_name
        # After the commit: an RPC racing this one may have cached the old caller meanwhile.
        self._sessions.forget_user(user.id)
        log.info("admin %s updated user %s: %s", caller.user_id, user.id, ",".join(sorted(set(paths))))
        return user

    async def delete_user(self, caller: Caller, user_id: str) -> None:
        """Delete a user and all they own, like DeleteAccount; never the last active admin."""
        uid = only_uuid("user_id", user_id)
        async with self._db.transaction() as db:
            await _require_user(db, uid)
        await self._auth.delete_user(uid)
        log.info("admin %s deleted user %s", caller.user_id, uid)

    # -- waitlist -------------------------------------------------------------

    async def list_waitlist(self, page_size: int, page_token: str, include_approved: bool) -> Page[WaitlistItem]:
        """Pending entries in arrival order, then (optionally) approved ones.

        Keyset on (approved, seq); positions are counted, not stored, so they
        stay right while entries ahead are approved.
        """
        v = Violations()
        size = Paginator.page_size(v, page_size)
        scope = json.dumps(["ListWaitlist", include_approved])
        keyset = self._paginator.decode(v, page_token, scope, 2)
        v.raise_if_any()
        approved = WaitlistEntry.approve_time.is_not(None)
        query = select(WaitlistEntry)
        if not include_approved:
            query = query.where(WaitlistEntry.approve_time.is_(None))
        if keyset is not None:
            query = query.where(tuple_(approved, WaitlistEntry.seq) > (keyset[0] == "1", int(keyset[1])))
        query = query.order_by(approved, WaitlistEntry.seq).limit(size + 1)
        async with self._db.transaction() as db:
            rows = list((await db.execute(query)).scalars())
            pending = [entry for entry in rows[:size] if entry.approve_time is None]
            ahead = 0
            if pending:
                ahead = int(
                    await db.scalar(
                        select(func.count())
                        .select_from(WaitlistEntry)
                        .where(WaitlistEntry.approve_time.is_(None), WaitlistEntry.seq < pending[0].seq)
                    )
                    or 0
                )
        positions = {entry.id: ahead + n for n, entry in enumerate(pending, start=1)}
        items = [WaitlistItem(entry, positions.get(entry.id, 0)) for entry in rows]
        return self._paginator.page(
            items, size, scope, lambda i: ("1" if i.entry.approve_time else "0", str(i.entry.seq))
        )

    async def approve_waitlist_entries(self, caller: Caller, entry_ids: list[str]) -> list[WaitlistItem]:
        """Let entries in: a WAITLISTED account with the entry's email is activated
        (PENDING_VERIFICATION until its email is verified), an email without an
        account gets an invite. Already approved entries are returned unchanged."""
        v = Violations()
        if not entry_ids:
            v.add("entry_ids", "must name at least one entry")
        elif len(entry_ids) > MAX_APPROVALS:
            v.add("entry_ids", f"must name at most {MAX_APPROVALS} entries")
        ids = [v.uuid(f"entry_ids[{n}]", value) for n, value in enumerate(entry_ids[:MAX_APPROVALS])]
        v.raise_if_any()
        wanted = [i for i in dict.fromkeys(ids) if i is not None]
        invites: list[str] = []
        activated: list[User] = []
        async with self._db.transaction() as db:
            found = await db.execute(
                select(WaitlistEntry).where(WaitlistEntry.id.in_(wanted)).order_by(WaitlistEntry.seq).with_for_update()
            )
            entries = {entry.id: entry for entry in found.scalars()}
            missing = [i for i in wanted if i not in entries]
            if missing:
                raise NotFound(
                    f"waitlist entry {missing[0]} not found",
                    reason=Reason.WAITLIST_ENTRY_NOT_FOUND,
                    metadata={"entry_id": str(missing[0])},
                )
            pending = [entry for entry in entries.values() if entry.approve_time is None]
            accounts = await db.execute(
                select(User).where(User.email.in_([e.email for e in pending])).order_by(User.id).with_for_update()
            )
            users = {user.email: user for user in accounts.scalars()}
            now = utcnow()
            for entry in pending:
                entry.approve_time = now
                user = users.get(entry.email)
                if user is None:
                    entry.invite_sent = True
                    invites.append(entry.email)
                elif user.state is UserState.WAITLISTED:
                    user.state = UserState.ACTIVE if user.email_verified else UserState.PENDING_VERIFICATION
                    activated.append(user)
                # Any other account got past the waitlist another way (an invite
                # code, or registering while it was off): nothing to send.
        for user in activated:
            self._sessions.forget_user(user.id)
            await self._auth.notify_account_activated(user.email)
        for email in invites:
            await self._auth.create_invite(email)
        if pending:
            log.info("admin %s approved %d waitlist entries", caller.user_id, len(pending))
        return [WaitlistItem(entries[i], 0) for i in ids if i is not None]

    # -- statistics, health, housekeeping ---------------------------------------

    async def get_stats(self, start: datetime | None, end: datetime | None) -> Stats:
        return await self._stats.get_stats(start, end)

    def clear_stats_cache(self) -> None:
        """Forget this replica's cached results (tests). Stored past days need no
        clearing, except after a bulk load into past days (seed_bulk clears them)."""
        self._stats.clear_cache()

    async def system_health(self) -> SystemHealth:
        """This replica's view (the database answers a trivial query in time, or it is
        unreachable), and the replicas it can see: every live one while the database
        answers, only itself when it does not."""
        latency: timedelta | None
        try:
            latency = timedelta(seconds=await asyncio.wait_for(self._db.ping(), PING_TIMEOUT_SECONDS))
        except Exception as exc:  # whatever the failure, the answer is "unreachable"
            log.warning("health: database unreachable: %s", exc)
            latency = None
        return SystemHealth(
            database_reachable=latency is not None,
            database_latency=latency,
            uptime=timedelta(seconds=self._activity.uptime_seconds),
            version=__version__,
            active_chat_streams=self._activity.chat_streams,
            active_generations=self._activity.generations,
            replicas=await self._heartbeat.live_replicas() if latency is not None else [self._heartbeat.own_status()],
        )

    async def cleanup_empty_conversations(self, caller: Caller, older_than: timedelta | None) -> int:
        """Every user's empty conversations older than older_than (default 24 h)."""
        deleted = await self._conversations.cleanup_empty_conversations(
            None, DEFAULT_EMPTY_AGE if older_than is None else older_than
        )
        log.info("admin %s cleaned up %d empty conversations", caller.user_id, deleted)
        return deleted


async def _require_user(db: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    """The person with this id. Service accounts are users rows too, but they are
    managed through ServiceAccountService only: here they do not exist, so no
    admin call can give one a password-less ADMIN role or a waitlist state."""
    user = await db.get(User, user_id, with_for_update=for_update)
    if user is None or user.kind is not UserKind.USER:
        raise NotFound("user not found", reason=Reason.USER_NOT_FOUND)
    return user
