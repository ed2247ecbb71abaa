"""Sessions: issuing, rotating, revoking and checking tokens.

A session is one login. Its refresh tokens rotate on every use; presenting a
token that was already rotated means it was stolen or replayed, so the whole
session (the "family") is revoked. Access tokens name their session, and every
authenticated RPC checks that session is still live. That check is cached for
a few seconds per process so most RPCs cost no database round trip; revoking
in this process drops the cache entry at once, other replicas notice within
the cache lifetime.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.accounts.tokens import AccessTokens, hash_secret, new_secret
from parley_server.common.caller import Caller
from parley_server.common.clock import utcnow
from parley_server.common.errors import Reason, Unauthenticated
from parley_server.common.ttl_cache import TtlCache
from parley_server.db.database import Database
from parley_server.db.models import RefreshToken, Session, User, UserState

# Accounts in these states keep no usable session.
LOCKED_OUT_STATES = frozenset({UserState.DISABLED, UserState.WAITLISTED})
# Sessions whose check a process keeps: far more than are used within one
# cache lifetime, yet a bound on memory.
MAX_CACHED_SESSIONS = 100_000


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_token_expire_time: datetime
    refresh_token: str
    refresh_token_expire_time: datetime


class SessionService:
    """Token life cycle, shared by AuthService and the auth interceptor."""

    def __init__(
        self,
        database: Database,
        access_tokens: AccessTokens,
        *,
        refresh_ttl: timedelta,
        cache_seconds: float,
    ) -> None:
        self._db = database
        self._access = access_tokens
        self._refresh_ttl = refresh_ttl
        # session id -> its caller, or None when the session is not live
        self._cache: TtlCache[uuid.UUID, Caller | None] = TtlCache(cache_seconds, MAX_CACHED_SESSIONS)

    async def open(self, db: AsyncSession, user: User, client_address: str) -> TokenPair:
        """Start a session for user (inside the caller's transaction)."""
        now = utcnow()
        session = Session(
            user_id=user.id,
            expire_time=now + self._refresh_ttl,
            client_address=client_address[:100],
        )
        db.add(session)
        await db.flush()
        return await self._issue(db, user.id, session, now)

    async def _issue(self, db: AsyncSession, user_id: uuid.UUID, session: Session, now: datetime) -> TokenPair:
        refresh = new_secret()
        db.add(RefreshToken(token_hash=hash_secret(refresh), session_id=session.id))
        access, access_expire = self._access.issue(user_id, session.id, now)
        return TokenPair(access, access_expire, refresh, session.expire_time)

    async def rotate(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token for a new pair; reuse revokes the session."""
        reused_session: uuid.UUID | None = None
        async with self._db.transaction() as db:
            row = (
                await db.execute(
                    select(RefreshToken, Session, User)
                    .join(Session, RefreshToken.session_id == Session.id)
                    .join(User, Session.user_id == User.id)
                    .where(RefreshToken.token_hash == hash_secret(refresh_token))
                    .with_for_update(of=RefreshToken)
                )
            ).one_or_none()
            if row is None:
                raise Unauthenticated("refresh token invalid", reason=Reason.REFRESH_TOKEN_INVALID)
            token, session, user = row
            now = utcnow()
            if session.revoke_time is not None or session.expire_time <= now:
                raise Unauthenticated("session ended; log in again", reason=Reason.SESSION_REVOKED)
            if user.state in LOCKED_OUT_STATES:
                raise Unauthenticated("account cannot log in", reason=Reason.SESSION_REVOKED)
            if token.rotate_time is not None:
                session.revoke_time = now
                reused_session = session.id
            else:
                token.rotate_time = now
                return await self._issue(db, user.id, session, now)
        self._cache.pop(reused_session)
        raise Unauthenticated(
            "refresh token was already used; the session has been revoked",
            reason=Reason.REFRESH_TOKEN_REUSED,
        )

    async def session_of_refresh_token(self, db: AsyncSession, refresh_token: str) -> Session | None:
        return (
            await db.execute(
                select(Session)
                .join(RefreshToken, RefreshToken.session_id == Session.id)
                .where(RefreshToken.token_hash == hash_secret(refresh_token))
            )
        ).scalar_one_or_none()

    async def revoke(self, db: AsyncSession, session_id: uuid.UUID) -> None:
        await db.execute(
            update(Session).where(Session.id == session_id, Session.revoke_time.is_(None)).values(revoke_time=utcnow())
        )
        self._forget_sessions(db, [session_id])

    async def revoke_all(self, db: AsyncSession, user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> None:
        """Revoke every live session of user_id except `keep`."""
        stmt = update(Session).where(Session.user_id == user_id, Session.revoke_time.is_(None))
        if keep is not None:
            stmt = stmt.where(Session.id != keep)
        revoked = await db.execute(stmt.values(revoke_time=utcnow()).returning(Session.id))
        self._forget_sessions(db, list(revoked.scalars()))

    def _forget_sessions(self, db: AsyncSession, session_ids: list[uuid.UUID]) -> None:
        """Drop cached callers of these sessions now, and again once db commits: an
        RPC that read a session before the commit may have cached it as live meanwhile."""

        def drop(*_: object) -> None:
            for session_id in session_ids:
                self._cache.pop(session_id)

        drop()
        event.listen(db.sync_session, "after_commit", drop, once=True)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drop cached callers of user_id (after a change of role, state or premium)."""
        self._cache.pop_where(lambda caller: caller is not None and caller.user_id == user_id)

    def clear_cache(self) -> None:
        self._cache.clear()

    async def authenticate(self, access_token: str) -> Caller:
        """The caller an access token stands for, if its session is still live."""
        claims = self._access.decode(access_token)
        caller = await self._cache.get(claims.session_id, lambda: self._load_caller(claims.session_id))
        if caller is None or caller.user_id != claims.user_id:
            raise Unauthenticated("session ended; log in again", reason=Reason.SESSION_REVOKED)
        return caller

    async def _load_caller(self, session_id: uuid.UUID) -> Caller | None:
        async with self._db.transaction() as db:
            row = (
                await db.execute(
                    select(Session.user_id, User.role, User.state, User.premium)
                    .join(User, Session.user_id == User.id)
                    .where(
                        Session.id == session_id,
                        Session.revoke_time.is_(None),
                        Session.expire_time > utcnow(),
                    )
                )
            ).one_or_none()
        if row is None or row.state in LOCKED_OUT_STATES:
            return None
        return Caller(row.user_id, session_id, row.role, row.state, row.premium)
