"""Login rate limits: per email, per client, in PostgreSQL so every replica agrees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from parley.auth.v1 import auth_pb2
from parley_server.app import App
from tests.helpers.accounts import PASSWORD
from tests.helpers.errors import expect_error
from tests.helpers.in_process import second_server
from tests.helpers.stubs import Stubs

WRONG = "not the password at all"
LIMIT = 5  # PARLEY_LOGIN_MAX_FAILURES_PER_EMAIL default
WINDOW_SECONDS = 15 * 60


async def login(stubs: Stubs, email: str, password: str) -> auth_pb2.LoginResponse:
    response: auth_pb2.LoginResponse = await stubs.auth.Login(auth_pb2.LoginRequest(email=email, password=password))
    return response


async def fail_logins(stubs: Stubs, email: str, times: int) -> None:
    for _ in range(times):
        await expect_error(login(stubs, email, WRONG), grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


async def expect_limited(stubs: Stubs, email: str, password: str = PASSWORD) -> None:
    details = await expect_error(login(stubs, email, password), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert details.retry_seconds is not None
    assert 0 < details.retry_seconds <= WINDOW_SECONDS


async def counters(app: App) -> dict[str, int]:
    async with app.database.transaction() as db:
        rows = (await db.execute(text("SELECT key, count FROM rate_limit_counters"))).all()
    return {key: count for key, count in rows}


async def test_sixth_attempt_is_limited_even_with_the_right_password(stubs: Stubs) -> None:
    await stubs.active_account()
    await stubs.active_account("bob@example.com")
    await fail_logins(stubs, "ada@example.com", LIMIT)
    await expect_limited(stubs, "ada@example.com")
    await expect_limited(stubs, "ada@example.com", WRONG)
    # The email is normalised before counting: case and spaces do not dodge it.
    await expect_limited(stubs, "  ADA@Example.com ")
    # Another account is unaffected.
    assert (await login(stubs, "bob@example.com", PASSWORD)).tokens.access_token


async def test_counter_is_a_row_in_postgresql(stubs: Stubs) -> None:
    await stubs.active_account()
    await fail_logins(stubs, "ada@example.com", 2)
    found = await counters(stubs.app)
    assert found["login-email:ada@example.com"] == 2
    # Blocked attempts are refused before any password check and not counted further.
    await fail_logins(stubs, "ada@example.com", LIMIT - 2)
    await expect_limited(stubs, "ada@example.com")
    assert (await counters(stubs.app))["login-email:ada@example.com"] == LIMIT


async def test_unknown_email_is_limited_the_same_way(stubs: Stubs) -> None:
    """No enumeration through the limiter: an unknown email locks out like a real one."""
    await fail_logins(stubs, "ghost@example.com", LIMIT)
    await expect_limited(stubs, "ghost@example.com")


async def test_fewer_failures_than_the_limit_then_success_resets_the_count(stubs: Stubs) -> None:
    await stubs.active_account()
    await fail_logins(stubs, "ada@example.com", LIMIT - 1)
    await stubs.login("ada@example.com")
    assert "login-email:ada@example.com" not in await counters(stubs.app)
    # A full allowance again: LIMIT - 1 more failures still leave the right password working.
    await fail_logins(stubs, "ada@example.com", LIMIT - 1)
    await stubs.login("ada@example.com")


async def test_limit_lifts_when_the_window_has_passed(stubs: Stubs) -> None:
    await stubs.active_account()
    await fail_logins(stubs, "ada@example.com", LIMIT)
    await expect_limited(stubs, "ada@example.com")
    async with stubs.app.database.transaction() as db:
        await db.execute(
            text("UPDATE rate_limit_counters SET window_start = now() - make_interval(secs => :s)"),
            {"s": WINDOW_SECONDS + 1},
        )
    await stubs.login("ada@example.com")


async def test_limit_holds_across_replicas(stubs: Stubs, replica: Stubs) -> None:
    await stubs.active_account()
    await stubs.active_account("bob@example.com")
    # Five failures on this replica: the other one refuses the sixth.
    await fail_logins(stubs, "ada@example.com", LIMIT)
    await expect_limited(replica, "ada@example.com")
    # Failures spread over both replicas add up.
    await fail_logins(stubs, "bob@example.com", 3)
    await fail_logins(replica, "bob@example.com", LIMIT - 3)
    await expect_limited(stubs, "bob@example.com")
    await expect_limited(replica, "bob@example.com")


async def test_wrong_passwords_on_change_password_and_delete_account_count_too(stubs: Stubs) -> None:
    account = await stubs.active_account()
    for _ in range(3):
        await expect_error(
            stubs.auth.ChangePassword(
                auth_pb2.ChangePasswordRequest(old_password=WRONG, new_password="a brand new password"),
                metadata=account.md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "WRONG_PASSWORD",
        )
    for _ in range(LIMIT - 3):
        await expect_error(
            stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=WRONG), metadata=account.md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "WRONG_PASSWORD",
        )
    # A stolen access token does not give unlimited password guesses...
    details = await expect_error(
        stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=PASSWORD), metadata=account.md),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
    )
    assert details.retry_seconds and details.retry_seconds > 0
    # ...and the account was not deleted.
    me = await stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=account.md)
    assert me.user.email == "ada@example.com"
    await expect_limited(stubs, "ada@example.com")


async def test_concurrent_guesses_cannot_exceed_the_limit(stubs: Stubs) -> None:
    """Firing guesses in parallel must not buy more than LIMIT password checks."""
    await stubs.active_account()
    results = await asyncio.gather(*(login(stubs, "ada@example.com", WRONG) for _ in range(20)), return_exceptions=True)
    codes = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(codes) == 20
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) <= LIMIT, codes
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED}
    await expect_limited(stubs, "ada@example.com")


@pytest.fixture
async def strict_replica(stubs: Stubs, tmp_root: Path, database_url: str) -> AsyncIterator[Stubs]:
    """A replica allowing only 3 failures per client address (the default is 50)."""
    async with second_server(tmp_root, database_url, login_max_failures_per_client=3) as other:
        yield other


async def test_many_failures_from_one_client_limit_that_client(strict_replica: Stubs) -> None:
    """Failures spread over many emails from one address: the address is limited, even for a real account."""
    stubs = strict_replica
    await stubs.active_account()
    # Successful logins do not use up the client's allowance.
    for _ in range(4):
        await stubs.login("ada@example.com")
    for i in range(3):
        await fail_logins(stubs, f"user{i}@example.com", 1)
    assert (await counters(stubs.app))["login-client:127.0.0.1"] == 3
    await expect_limited(stubs, "ada@example.com")
    await expect_limited(stubs, "fresh@example.com", WRONG)
