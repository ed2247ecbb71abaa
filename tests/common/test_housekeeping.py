"""Housekeeping: what has expired is deleted, what still matters is kept, one replica per round."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import func, select, text

from parley.auth.v1 import auth_pb2
from parley_server.common.housekeeping import Housekeeping
from parley_server.db.locks import HOUSEKEEPING_LOCK_KEY, scoped
from parley_server.db.models import EmailToken, IdempotencyKey, Invite, RateLimitCounter, Session, TokenPurpose
from tests.helpers.errors import expect_error
from tests.helpers.stubs import Stubs


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _housekeeping(stubs: Stubs) -> Housekeeping:
    return Housekeeping(stubs.app.database, rate_limit_horizon=timedelta(hours=1), interval=3600)


async def _count(stubs: Stubs, model: type) -> int:
    async with stubs.app.database.transaction() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_expired_rows_go_and_live_ones_stay(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    user_id = uuid.UUID(ada.user.id)
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=2)
    async with stubs.app.database.transaction() as db:
        db.add_all(
            [
                Session(user_id=user_id, expire_time=long_ago),  # expired two days ago
                Session(user_id=user_id, expire_time=now + timedelta(days=9), revoke_time=long_ago),  # logged out
                Session(user_id=user_id, expire_time=now + timedelta(days=9), revoke_time=now),  # just logged out
                EmailToken(
                    token_hash=_hash("old"), user_id=user_id, purpose=TokenPurpose.RESET_PASSWORD, expire_time=long_ago
                ),
                EmailToken(
                    token_hash=_hash("new"),
                    user_id=user_id,
                    purpose=TokenPurpose.RESET_PASSWORD,
                    expire_time=now + timedelta(hours=1),
                ),
                Invite(code_hash=_hash("old"), expire_time=long_ago),
                Invite(code_hash=_hash("new"), expire_time=now + timedelta(days=1)),
                RateLimitCounter(key="login-email:old@example.com", window_start=now - timedelta(hours=2), count=5),
                RateLimitCounter(key="login-email:new@example.com", window_start=now - timedelta(minutes=5), count=5),
                IdempotencyKey(
                    user_id=user_id,
                    scope="old",
                    request_id="r",
                    resource_id=uuid.uuid4(),
                    create_time=now - timedelta(days=8),
                ),
                IdempotencyKey(user_id=user_id, scope="new", request_id="r", resource_id=uuid.uuid4()),
            ]
        )
    sessions_before = await _count(stubs, Session)

    deleted = await _housekeeping(stubs).run_once()

    assert deleted == {
        "rate_limit_counters": 1,
        "sessions": 2,
        "email_tokens": 1,
        "invites": 1,
        "idempotency_keys": 1,
    }
    assert await _count(stubs, Session) == sessions_before - 2
    async with stubs.app.database.transaction() as db:
        counters = set(await db.scalars(select(RateLimitCounter.key)))
        assert "login-email:new@example.com" in counters and "login-email:old@example.com" not in counters
        assert set(await db.scalars(select(IdempotencyKey.scope))) == {"new"}
        assert await db.scalar(select(func.count()).select_from(Invite)) == 1
    # Ada's own session (from her login) is untouched: her tokens still work and refresh.
    me = await stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=ada.md)
    assert me.user.id == ada.user.id
    refreshed = await stubs.auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=ada.tokens.refresh_token))
    assert refreshed.tokens.access_token
    assert await _housekeeping(stubs).run_once() == dict.fromkeys(deleted, 0)  # nothing left to do


async def test_a_logged_out_session_stays_refused_after_it_is_deleted(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    await stubs.auth.Logout(auth_pb2.LogoutRequest(), metadata=ada.md)
    async with stubs.app.database.transaction() as db:
        await db.execute(
            text("UPDATE sessions SET revoke_time = now() - interval '2 days' WHERE user_id = :u"), {"u": ada.user.id}
        )
    assert (await _housekeeping(stubs).run_once() or {})["sessions"] == 1
    stubs.app.sessions.clear_cache()
    await expect_error(
        stubs.auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=ada.tokens.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await expect_error(
        stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=ada.md), grpc.StatusCode.UNAUTHENTICATED
    )


async def test_one_replica_per_round(stubs: Stubs) -> None:
    async with stubs.app.database.transaction() as db:
        await db.execute(select(func.pg_advisory_xact_lock(scoped(HOUSEKEEPING_LOCK_KEY))))  # another replica's round
        assert await _housekeeping(stubs).run_once() is None
    assert await _housekeeping(stubs).run_once() is not None
