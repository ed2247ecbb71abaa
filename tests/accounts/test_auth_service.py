"""AuthService over gRPC: every RPC, its happy path and the ways callers get it wrong."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Table

from parley.auth.v1 import auth_pb2
from parley.conversation.v1 import conversation_pb2
from parley_server.app import App
from parley_server.db.models import User, UserState
from tests.helpers.accounts import PASSWORD, Account, current_user
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error, expect_invalid_exactly
from tests.helpers.stubs import Stubs

INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NEW_PASSWORD = "a completely new passphrase"
ADA = "ada@example.com"


# -- helpers ----------------------------------------------------------------------


async def expect_revoked(stubs: Stubs, account: Account) -> None:
    """Both tokens of account's session are dead."""
    await expect_error(current_user(stubs, account.md), UNAUTHENTICATED, "SESSION_REVOKED")
    await expect_error(refresh(stubs, account.tokens.refresh_token), UNAUTHENTICATED, "SESSION_REVOKED")


async def refresh(stubs: Stubs, token: str) -> auth_pb2.TokenPair:
    response: auth_pb2.RefreshTokenResponse = await stubs.auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=token)
    )
    return response.tokens


async def login_fails(stubs: Stubs, email: str, password: str) -> None:
    await expect_error(
        stubs.auth.Login(auth_pb2.LoginRequest(email=email, password=password)), UNAUTHENTICATED, "INVALID_CREDENTIALS"
    )


async def set_state(app: App, email: str, state: UserState) -> None:
    async with app.database.transaction() as db:
        users = User.__table__
        assert isinstance(users, Table)  # declared as a FromClause; a mapped class's own table
        user = (await db.execute(users.select().where(User.email == email))).one()
        await db.execute(users.update().where(User.id == user.id).values(state=state))
    app.sessions.forget_user(user.id)


async def snapshot_except(app: App, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    return {name: rows for name, rows in (await snapshot(app)).items() if name not in tables}


def seconds_from_now(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9 - time.time()


# -- Register -----------------------------------------------------------------------


async def test_register_creates_a_pending_account_and_emails_a_verification_link(stubs: Stubs) -> None:
    user = await stubs.register("  Ada.Lovelace@Example.COM ", display_name="Ada")
    assert user.email == "ada.lovelace@example.com"
    assert user.state == auth_pb2.USER_STATE_PENDING_VERIFICATION
    assert user.role == auth_pb2.ROLE_USER
    assert not user.email_verified and not user.premium
    assert user.display_name == "Ada"
    uuid.UUID(user.id)
    assert abs(seconds_from_now(user.create_time)) < 60
    assert not user.HasField("last_login_time")
    assert await stubs.emailed_subjects("ada.lovelace@example.com") == ["Verify your Parley email address"]
    # The password is stored hashed (Argon2id), never as given.
    [(stored,)] = await sql(stubs.app, "SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_register_boundaries_are_accepted(stubs: Stubs) -> None:
    user = await stubs.register(ADA, password="x" * 10, display_name="d" * 100)
    assert user.display_name == "d" * 100
    # The display name is trimmed.
    other = await stubs.register("bob@example.com", password="p" * 1024, display_name="  Bob the Builder  ")
    assert other.display_name == "Bob the Builder"


async def test_register_duplicate_email_is_already_exists(stubs: Stubs, subtests: pytest.Subtests) -> None:
    await stubs.register(ADA)
    before = await snapshot(stubs.app)
    for spelling in (ADA, "ADA@example.com", "  Ada@Example.Com  "):
        with subtests.test(spelling):
            await expect_error(
                stubs.register(spelling, password="another password"), grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN"
            )
            assert await snapshot(stubs.app) == before


REGISTER_CASES: dict[str, tuple[dict[str, str], set[str]]] = {
    "password 9 chars": ({"password": "x" * 9}, {"password"}),
    "password empty": ({"password": ""}, {"password"}),
    "password 1025 chars": ({"password": "x" * 1025}, {"password"}),
    "password is the email": ({"email": "carol@example.com", "password": "Carol@Example.com"}, {"password"}),
    "email empty": ({"email": ""}, {"email"}),
    "email blank": ({"email": "   "}, {"email"}),
    "email without @": ({"email": "carol.example.com"}, {"email"}),
    "email without domain dot": ({"email": "carol@example"}, {"email"}),
    "email with two @": ({"email": "carol@x@example.com"}, {"email"}),
    "email with space": ({"email": "carol smith@example.com"}, {"email"}),
    "email 300 chars": ({"email": "c" * 288 + "@example.com"}, {"email"}),
    "email control char": ({"email": "carol\x01@example.com"}, {"email"}),
    "display_name 101 chars": ({"display_name": "d" * 101}, {"display_name"}),
    "display_name huge": ({"display_name": "d" * 100_000}, {"display_name"}),
    "display_name bell": ({"display_name": "Carol\x07"}, {"display_name"}),
    "display_name NUL": ({"display_name": "Car\x00ol"}, {"display_name"}),
    "display_name escape sequence": ({"display_name": "\x1b[31mCarol"}, {"display_name"}),
    "invite_code huge": ({"invite_code": "i" * 201}, {"invite_code"}),
    "three bad fields": (
        {"email": "nope", "password": "short", "display_name": "d" * 101},
        {"email", "password", "display_name"},
    ),
}


async def test_register_rejects_bad_input_and_changes_nothing(stubs: Stubs, subtests: pytest.Subtests) -> None:
    await stubs.register(ADA)  # something in the tables for the snapshot to guard
    before = await snapshot(stubs.app)
    for case, (fields, bad) in REGISTER_CASES.items():
        with subtests.test(case):
            request = {"email": "carol@example.com", "password": "a good long password", **fields}
            await expect_invalid_exactly(
                stubs.app, stubs.auth.Register(auth_pb2.RegisterRequest(**request)), bad, before
            )
    assert await stubs.emailed_subjects("carol@example.com") == []
    # The same request with good values goes through.
    await stubs.register("carol@example.com", "a good long password")


# -- Login ------------------------------------------------------------------------------


async def test_login_returns_tokens_and_the_user(stubs: Stubs) -> None:
    registered = await stubs.register(ADA)
    response = await stubs.auth.Login(auth_pb2.LoginRequest(email=" Ada@EXAMPLE.com", password=PASSWORD))
    tokens, user = response.tokens, response.user
    assert tokens.access_token.count(".") == 2  # a JWT
    assert tokens.refresh_token and tokens.refresh_token != tokens.access_token
    assert 14 * 60 < seconds_from_now(tokens.access_token_expire_time) <= 15 * 60 + 5
    assert 29 * 86400 < seconds_from_now(tokens.refresh_token_expire_time) <= 30 * 86400 + 5
    assert user.id == registered.id and user.email == ADA
    assert user.HasField("last_login_time") and abs(seconds_from_now(user.last_login_time)) < 60
    current = await current_user(stubs, (("authorization", f"Bearer {tokens.access_token}"),))
    assert current.last_login_time == user.last_login_time
    # The refresh token is stored only as its SHA-256.
    assert await sql(stubs.app, "SELECT token_hash FROM refresh_tokens") == [
        (hashlib.sha256(tokens.refresh_token.encode()).digest(),)
    ]


async def test_each_login_is_a_separate_session(stubs: Stubs) -> None:
    first = await stubs.active_account()
    second = await stubs.login(ADA)
    assert first.tokens.refresh_token != second.tokens.refresh_token
    assert await sql(stubs.app, "SELECT count(*) FROM sessions") == [(2,)]


async def test_wrong_password_and_unknown_email_get_the_same_answer(stubs: Stubs) -> None:
    await stubs.active_account()
    wrong_password = await expect_error(
        stubs.auth.Login(auth_pb2.LoginRequest(email=ADA, password="not my password")), UNAUTHENTICATED
    )
    unknown_email = await expect_error(
        stubs.auth.Login(auth_pb2.LoginRequest(email="nobody@example.com", password="not my password")),
        UNAUTHENTICATED,
    )
    assert wrong_password.reason == unknown_email.reason == "INVALID_CREDENTIALS"
    assert wrong_password.message == unknown_email.message
    assert await sql(stubs.app, "SELECT count(*) FROM sessions") == [(1,)]  # only active_account's


async def test_login_rejects_empty_fields(stubs: Stubs) -> None:
    await expect_invalid_exactly(stubs.app, stubs.auth.Login(auth_pb2.LoginRequest()), {"email", "password"})
    await expect_invalid_exactly(
        stubs.app, stubs.auth.Login(auth_pb2.LoginRequest(email="x" * 300, password="p" * 2000)), {"email", "password"}
    )


async def test_pending_account_can_log_in_but_not_use_user_rpcs_until_verified(stubs: Stubs) -> None:
    await stubs.register(ADA)
    account = await stubs.login(ADA)
    assert account.user.state == auth_pb2.USER_STATE_PENDING_VERIFICATION
    assert (await current_user(stubs, account.md)).email == ADA
    list_conversations: Callable[[], Awaitable[object]] = lambda: stubs.conversation.ListConversations(  # noqa: E731
        conversation_pb2.ListConversationsRequest(), metadata=account.md
    )
    await expect_error(list_conversations(), DENIED, "EMAIL_NOT_VERIFIED")
    # Verifying opens the door for the same, already issued token.
    await stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=await stubs.emailed_token(ADA)))
    await list_conversations()


async def test_disabled_account_is_denied_only_with_the_right_password(stubs: Stubs) -> None:
    account = await stubs.active_account()
    await set_state(stubs.app, ADA, UserState.DISABLED)
    await login_fails(stubs, ADA, "not my password")
    await expect_error(
        stubs.auth.Login(auth_pb2.LoginRequest(email=ADA, password=PASSWORD)), DENIED, "ACCOUNT_DISABLED"
    )
    # Its existing session is locked out too.
    await expect_revoked(stubs, account)
    assert await sql(stubs.app, "SELECT count(*) FROM sessions") == [(1,)]


# -- VerifyEmail ------------------------------------------------------------------------


async def test_verify_email_activates_the_account(stubs: Stubs) -> None:
    await stubs.register(ADA)
    pending = await stubs.login(ADA)
    response = await stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=await stubs.emailed_token(ADA)))
    assert response.user.state == auth_pb2.USER_STATE_ACTIVE and response.user.email_verified
    assert (await current_user(stubs, pending.md)).state == auth_pb2.USER_STATE_ACTIVE


async def test_verify_email_token_works_once(stubs: Stubs) -> None:
    await stubs.register(ADA)
    token = await stubs.emailed_token(ADA)
    await stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token))
    before = await snapshot(stubs.app)
    await expect_error(stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token)), PRECONDITION, "TOKEN_USED")
    assert await snapshot(stubs.app) == before


async def test_verify_email_unknown_token(stubs: Stubs) -> None:
    await stubs.register(ADA)
    token = await stubs.emailed_token(ADA)
    for bad in ("no-such-token", token[:-1], token + "x", token.upper()):
        await expect_error(
            stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=bad)), PRECONDITION, "TOKEN_INVALID"
        )
    # A password-reset token is not a verification token.
    await stubs.auth.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=ADA))
    reset = await stubs.emailed_token(ADA, "Reset")
    await expect_error(stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=reset)), PRECONDITION, "TOKEN_INVALID")
    assert (await stubs.login(ADA)).user.state == auth_pb2.USER_STATE_PENDING_VERIFICATION


async def test_verify_email_expired_token(stubs: Stubs) -> None:
    await stubs.register(ADA)
    await sql(stubs.app, "UPDATE email_tokens SET expire_time = now() - interval '1 second'")
    before = await snapshot(stubs.app)
    await expect_error(
        stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=await stubs.emailed_token(ADA))),
        PRECONDITION,
        "TOKEN_EXPIRED",
    )
    assert await snapshot(stubs.app) == before


async def test_verify_email_empty_or_huge_token(stubs: Stubs) -> None:
    await expect_invalid_exactly(stubs.app, stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token="")), {"token"})
    await expect_invalid_exactly(
        stubs.app, stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token="t" * 10_000)), {"token"}
    )


# -- RefreshToken -------------------------------------------------------------------------


async def test_refresh_rotates_to_new_working_tokens(stubs: Stubs) -> None:
    account = await stubs.active_account()
    rotated = await refresh(stubs, account.tokens.refresh_token)
    assert rotated.refresh_token != account.tokens.refresh_token
    assert rotated.access_token != account.tokens.access_token
    new_md = (("authorization", f"Bearer {rotated.access_token}"),)
    assert (await current_user(stubs, new_md)).email == ADA
    # The new refresh token rotates again; still one session.
    again = await refresh(stubs, rotated.refresh_token)
    assert again.refresh_token not in (rotated.refresh_token, account.tokens.refresh_token)
    assert await sql(stubs.app, "SELECT count(*) FROM sessions") == [(1,)]


async def test_reused_refresh_token_kills_the_whole_session(stubs: Stubs) -> None:
    account = await stubs.active_account()
    bystander = await stubs.login(ADA)  # another session of the same user
    rotated = await refresh(stubs, account.tokens.refresh_token)
    rotated_md = (("authorization", f"Bearer {rotated.access_token}"),)
    assert (await current_user(stubs, rotated_md)).email == ADA  # known live (and cached) before the replay
    await expect_error(refresh(stubs, account.tokens.refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    # The newest refresh token and every access token of the family are dead.
    await expect_error(refresh(stubs, rotated.refresh_token), UNAUTHENTICATED, "SESSION_REVOKED")
    for access in (rotated.access_token, account.tokens.access_token):
        await expect_error(
            current_user(stubs, (("authorization", f"Bearer {access}"),)), UNAUTHENTICATED, "SESSION_REVOKED"
        )
    # The old token stays refused, and another login of the same user is untouched.
    await expect_error(refresh(stubs, account.tokens.refresh_token), UNAUTHENTICATED, "SESSION_REVOKED")
    assert (await current_user(stubs, bystander.md)).email == ADA
    assert (await refresh(stubs, bystander.tokens.refresh_token)).access_token


async def test_refresh_with_unknown_empty_or_huge_token(stubs: Stubs) -> None:
    await stubs.active_account()
    await expect_error(refresh(stubs, "no-such-token"), UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    await expect_invalid_exactly(stubs.app, refresh(stubs, ""), {"refresh_token"})
    await expect_invalid_exactly(stubs.app, refresh(stubs, "r" * 10_000), {"refresh_token"})


async def test_refresh_of_an_expired_session(stubs: Stubs) -> None:
    account = await stubs.active_account()
    await sql(stubs.app, "UPDATE sessions SET expire_time = now() - interval '1 second'")
    await expect_error(refresh(stubs, account.tokens.refresh_token), UNAUTHENTICATED, "SESSION_REVOKED")


# -- Logout -------------------------------------------------------------------------------


async def logout(stubs: Stubs, account: Account, refresh_token: str = "", all_sessions: bool = False) -> None:
    await stubs.auth.Logout(
        auth_pb2.LogoutRequest(refresh_token=refresh_token, all_sessions=all_sessions), metadata=account.md
    )


async def test_logout_ends_the_current_session_at_once(stubs: Stubs) -> None:
    account = await stubs.active_account()
    other = await stubs.login(ADA)
    assert (await current_user(stubs, account.md)).email == ADA  # cached as live
    await logout(stubs, account)
    await expect_revoked(stubs, account)
    assert (await current_user(stubs, other.md)).email == ADA


async def test_logout_by_refresh_token_ends_that_session(stubs: Stubs) -> None:
    laptop = await stubs.active_account()
    phone = await stubs.login(ADA)
    assert (await current_user(stubs, phone.md)).email == ADA
    await logout(stubs, laptop, refresh_token=phone.tokens.refresh_token)
    await expect_revoked(stubs, phone)
    assert (await current_user(stubs, laptop.md)).email == ADA


async def test_logout_with_someone_elses_refresh_token_is_not_found(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    before = await snapshot(stubs.app)
    for token in (bob.tokens.refresh_token, "no-such-token"):
        await expect_error(
            stubs.auth.Logout(auth_pb2.LogoutRequest(refresh_token=token), metadata=ada.md),
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
        )
    assert await snapshot(stubs.app) == before
    assert (await current_user(stubs, bob.md)).email == "bob@example.com"
    assert (await current_user(stubs, ada.md)).email == ADA


async def test_logout_all_sessions(stubs: Stubs) -> None:
    sessions = [await stubs.active_account()] + [await stubs.login(ADA) for _ in range(2)]
    bob = await stubs.active_account("bob@example.com")
    for account in sessions:
        assert (await current_user(stubs, account.md)).email == ADA
    await logout(stubs, sessions[1], all_sessions=True)
    for account in sessions:
        await expect_revoked(stubs, account)
    assert (await current_user(stubs, bob.md)).email == "bob@example.com"
    # Logging in again works.
    assert (await current_user(stubs, (await stubs.login(ADA)).md)).email == ADA


async def test_logout_needs_a_token(stubs: Stubs) -> None:
    await expect_error(stubs.auth.Logout(auth_pb2.LogoutRequest(all_sessions=True)), UNAUTHENTICATED, "TOKEN_MISSING")


# -- GetCurrentUser / UpdateProfile --------------------------------------------------------


async def test_update_profile_display_name(stubs: Stubs) -> None:
    account = await stubs.active_account()
    response = await stubs.auth.UpdateProfile(
        auth_pb2.UpdateProfileRequest(
            user=auth_pb2.User(display_name="  Countess  ", email="evil@example.com", role=auth_pb2.ROLE_ADMIN),
            update_mask=FieldMask(paths=["display_name"]),
        ),
        metadata=account.md,
    )
    assert response.user.display_name == "Countess"
    stored = await current_user(stubs, account.md)
    assert stored.display_name == "Countess"
    # Only the masked field changed.
    assert stored.email == ADA and stored.role == auth_pb2.ROLE_USER


UPDATE_PROFILE_CASES: dict[str, tuple[list[str], str, set[str]]] = {
    "empty mask": ([], "New", {"update_mask"}),
    "email": (["email"], "New", {"update_mask.paths"}),
    "role": (["role"], "New", {"update_mask.paths"}),
    "state": (["state"], "New", {"update_mask.paths"}),
    "display_name with email": (["display_name", "email"], "New", {"update_mask.paths"}),
    "display_name too long": (["display_name"], "d" * 101, {"user.display_name"}),
    "display_name control char": (["display_name"], "New\x00", {"user.display_name"}),
}


async def test_update_profile_rejects_bad_masks_and_values(stubs: Stubs, subtests: pytest.Subtests) -> None:
    account = await stubs.active_account()
    before = await snapshot(stubs.app)
    for case, (paths, name, bad) in UPDATE_PROFILE_CASES.items():
        with subtests.test(case):
            request = auth_pb2.UpdateProfileRequest(
                user=auth_pb2.User(display_name=name, email="evil@example.com", role=auth_pb2.ROLE_ADMIN),
                update_mask=FieldMask(paths=paths),
            )
            await expect_invalid_exactly(stubs.app, stubs.auth.UpdateProfile(request, metadata=account.md), bad, before)
    stored = await current_user(stubs, account.md)
    assert (stored.display_name, stored.email, stored.role) == ("", ADA, auth_pb2.ROLE_USER)


# -- ChangePassword -------------------------------------------------------------------------


async def change_password(stubs: Stubs, account: Account, old: str, new: str) -> None:
    await stubs.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(old_password=old, new_password=new), metadata=account.md
    )


async def test_change_password_with_wrong_old_password(stubs: Stubs) -> None:
    account = await stubs.active_account()
    before = await snapshot_except(stubs.app, "rate_limit_counters")  # the failure is counted, by design
    details = await expect_error(
        change_password(stubs, account, "not my password", NEW_PASSWORD), INVALID, "WRONG_PASSWORD"
    )
    assert set(details.violations) == {"old_password"}
    assert await snapshot_except(stubs.app, "rate_limit_counters") == before
    await stubs.login(ADA, PASSWORD)


async def test_change_password_rejects_a_weak_new_password(stubs: Stubs) -> None:
    account = await stubs.active_account()
    await expect_invalid_exactly(stubs.app, change_password(stubs, account, PASSWORD, "short"), {"new_password"})
    await expect_invalid_exactly(stubs.app, change_password(stubs, account, PASSWORD, ADA.upper()), {"new_password"})
    await expect_invalid_exactly(stubs.app, change_password(stubs, account, "", NEW_PASSWORD), {"old_password"})
    await stubs.login(ADA, PASSWORD)


async def test_change_password_revokes_other_sessions_and_keeps_this_one(stubs: Stubs) -> None:
    account = await stubs.active_account()
    other = await stubs.login(ADA)
    assert (await current_user(stubs, other.md)).email == ADA
    await change_password(stubs, account, PASSWORD, NEW_PASSWORD)
    await expect_revoked(stubs, other)
    assert (await current_user(stubs, account.md)).email == ADA
    assert (await refresh(stubs, account.tokens.refresh_token)).access_token
    await login_fails(stubs, ADA, PASSWORD)
    assert (await stubs.login(ADA, NEW_PASSWORD)).user.email == ADA


# -- RequestPasswordReset / ResetPassword ------------------------------------------------------


async def request_reset(stubs: Stubs, email: str) -> None:
    await stubs.auth.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=email))


async def reset_password(stubs: Stubs, token: str, new: str = NEW_PASSWORD) -> None:
    await stubs.auth.ResetPassword(auth_pb2.ResetPasswordRequest(token=token, new_password=new))


async def test_request_password_reset_for_an_unknown_email_is_ok_and_sends_nothing(stubs: Stubs) -> None:
    await stubs.active_account()
    await request_reset(stubs, "nobody@example.com")
    assert await sql(stubs.app, "SELECT count(*) FROM outbox_emails WHERE recipient <> :e", e=ADA) == [(0,)]
    assert await sql(stubs.app, "SELECT count(*) FROM email_tokens WHERE purpose = 'reset_password'") == [(0,)]


async def test_request_password_reset_emails_a_known_account(stubs: Stubs) -> None:
    await stubs.active_account()
    await request_reset(stubs, " ADA@example.com ")
    assert await stubs.emailed_subjects(ADA, "Reset") == ["Reset your Parley password"]


async def test_request_password_reset_rejects_a_malformed_email(stubs: Stubs) -> None:
    await expect_invalid_exactly(
        stubs.app, stubs.auth.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email="nope")), {"email"}
    )


async def test_reset_emails_are_limited_per_hour(stubs: Stubs) -> None:
    await stubs.active_account()
    for _ in range(5):
        await request_reset(stubs, ADA)  # always OK: the answer never tells
    assert len(await stubs.emailed_subjects(ADA, "Reset")) == 3


async def test_reset_password_works_once_and_revokes_every_session(stubs: Stubs) -> None:
    account = await stubs.active_account()
    other = await stubs.login(ADA)
    await request_reset(stubs, ADA)
    token = await stubs.emailed_token(ADA, "Reset")
    await reset_password(stubs, token)
    await expect_revoked(stubs, account)
    await expect_revoked(stubs, other)
    await login_fails(stubs, ADA, PASSWORD)
    await stubs.login(ADA, NEW_PASSWORD)
    before = await snapshot(stubs.app)
    await expect_error(reset_password(stubs, token, "yet another passphrase"), PRECONDITION, "TOKEN_USED")
    assert await snapshot(stubs.app) == before


async def test_reset_password_weak_password_keeps_the_token_usable(stubs: Stubs) -> None:
    await stubs.active_account()
    await request_reset(stubs, ADA)
    token = await stubs.emailed_token(ADA, "Reset")
    await expect_invalid_exactly(stubs.app, reset_password(stubs, token, "short"), {"new_password"})
    await expect_invalid_exactly(stubs.app, reset_password(stubs, token, ADA), {"new_password"})
    await expect_invalid_exactly(stubs.app, reset_password(stubs, "", ""), {"token", "new_password"})
    await stubs.login(ADA, PASSWORD)
    await reset_password(stubs, token)
    await stubs.login(ADA, NEW_PASSWORD)


async def test_reset_password_with_expired_or_unknown_token(stubs: Stubs) -> None:
    await stubs.active_account()
    await request_reset(stubs, ADA)
    token = await stubs.emailed_token(ADA, "Reset")
    await sql(
        stubs.app,
        "UPDATE email_tokens SET expire_time = now() - interval '1 second' WHERE purpose = 'reset_password'",
    )
    before = await snapshot(stubs.app)
    await expect_error(reset_password(stubs, token), PRECONDITION, "TOKEN_EXPIRED")
    await expect_error(reset_password(stubs, "no-such-token"), PRECONDITION, "TOKEN_INVALID")
    # A verification token is not a reset token.
    await expect_error(reset_password(stubs, await stubs.emailed_token(ADA, "Verify")), PRECONDITION, "TOKEN_INVALID")
    assert await snapshot(stubs.app) == before
    await stubs.login(ADA, PASSWORD)


async def test_reset_password_verifies_a_pending_account(stubs: Stubs) -> None:
    await stubs.register(ADA)
    await request_reset(stubs, ADA)
    await reset_password(stubs, await stubs.emailed_token(ADA, "Reset"))
    assert (await stubs.login(ADA, NEW_PASSWORD)).user.state == auth_pb2.USER_STATE_ACTIVE


# -- ResendVerificationEmail ----------------------------------------------------------------


async def resend(stubs: Stubs, account: Account) -> None:
    await stubs.auth.ResendVerificationEmail(auth_pb2.ResendVerificationEmailRequest(), metadata=account.md)


async def test_resend_verification_email_sends_a_working_token(stubs: Stubs) -> None:
    await stubs.register(ADA)
    account = await stubs.login(ADA)
    first = await stubs.emailed_token(ADA)
    await resend(stubs, account)
    assert len(await stubs.emailed_subjects(ADA, "Verify")) == 2
    second = await stubs.emailed_token(ADA)
    assert second != first
    response = await stubs.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=second))
    assert response.user.state == auth_pb2.USER_STATE_ACTIVE


async def test_resend_after_verification_is_already_verified(stubs: Stubs) -> None:
    account = await stubs.active_account()
    before = await snapshot(stubs.app)
    await expect_error(
        stubs.auth.ResendVerificationEmail(auth_pb2.ResendVerificationEmailRequest(), metadata=account.md),
        PRECONDITION,
        "ALREADY_VERIFIED",
    )
    assert await snapshot(stubs.app) == before


async def test_resend_is_limited_to_three_per_hour(stubs: Stubs) -> None:
    await stubs.register(ADA)
    account = await stubs.login(ADA)
    for _ in range(3):
        await resend(stubs, account)
    before = await snapshot(stubs.app)
    details = await expect_error(
        stubs.auth.ResendVerificationEmail(auth_pb2.ResendVerificationEmailRequest(), metadata=account.md),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
    )
    assert details.retry_seconds is not None and 0 < details.retry_seconds <= 3600
    assert await snapshot(stubs.app) == before
    assert len(await stubs.emailed_subjects(ADA, "Verify")) == 4  # registration + 3


# -- DeleteAccount ----------------------------------------------------------------------------


async def rows_of(app: App, user_id: str) -> dict[str, int]:
    counts = await sql(
        app,
        """SELECT (SELECT count(*) FROM users WHERE id = :u),
                  (SELECT count(*) FROM sessions WHERE user_id = :u),
                  (SELECT count(*) FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE s.user_id = :u),
                  (SELECT count(*) FROM email_tokens WHERE user_id = :u)""",
        u=user_id,
    )
    return dict(zip(("users", "sessions", "refresh_tokens", "email_tokens"), counts[0], strict=True))


async def test_delete_account_with_wrong_password_deletes_nothing(stubs: Stubs) -> None:
    account = await stubs.active_account()
    before = await snapshot_except(stubs.app, "rate_limit_counters")
    details = await expect_error(
        stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password="not my password"), metadata=account.md),
        INVALID,
        "WRONG_PASSWORD",
    )
    assert set(details.violations) == {"password"}
    await expect_invalid_exactly(
        stubs.app, stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(), metadata=account.md), {"password"}
    )
    assert await snapshot_except(stubs.app, "rate_limit_counters") == before
    assert (await current_user(stubs, account.md)).email == ADA


async def test_delete_account_removes_the_user_and_their_sessions_and_tokens(stubs: Stubs) -> None:
    account = await stubs.active_account()
    other = await stubs.login(ADA)
    await refresh(stubs, other.tokens.refresh_token)
    await request_reset(stubs, ADA)
    bob = await stubs.active_account("bob@example.com")
    assert all((await rows_of(stubs.app, account.user.id)).values())
    bob_rows = await rows_of(stubs.app, bob.user.id)

    await stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=PASSWORD), metadata=account.md)

    assert await rows_of(stubs.app, account.user.id) == dict.fromkeys(bob_rows, 0)
    assert await rows_of(stubs.app, bob.user.id) == bob_rows
    await expect_error(current_user(stubs, account.md), UNAUTHENTICATED, "SESSION_REVOKED")
    await expect_error(current_user(stubs, other.md), UNAUTHENTICATED, "SESSION_REVOKED")
    await login_fails(stubs, ADA, PASSWORD)
    assert (await current_user(stubs, bob.md)).email == "bob@example.com"
    # The email is free again.
    again = await stubs.register(ADA)
    assert again.state == auth_pb2.USER_STATE_PENDING_VERIFICATION and again.id != account.user.id


# -- access control -------------------------------------------------------------------------

AUTHENTICATED_RPCS: dict[str, Callable[[Stubs], Awaitable[Any]]] = {
    "Logout": lambda s: s.auth.Logout(auth_pb2.LogoutRequest()),
    "GetCurrentUser": lambda s: s.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest()),
    "UpdateProfile": lambda s: s.auth.UpdateProfile(
        auth_pb2.UpdateProfileRequest(
            user=auth_pb2.User(display_name="x"), update_mask=FieldMask(paths=["display_name"])
        )
    ),
    "ChangePassword": lambda s: s.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(old_password=PASSWORD, new_password=NEW_PASSWORD)
    ),
    "ResendVerificationEmail": lambda s: s.auth.ResendVerificationEmail(auth_pb2.ResendVerificationEmailRequest()),
    "DeleteAccount": lambda s: s.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=PASSWORD)),
}


async def test_authenticated_rpcs_refuse_callers_without_a_token(stubs: Stubs) -> None:
    await stubs.active_account()
    before = await snapshot(stubs.app)
    for name, call in AUTHENTICATED_RPCS.items():
        details = await expect_error(call(stubs), UNAUTHENTICATED, "TOKEN_MISSING")
        assert details.message, name
    assert await snapshot(stubs.app) == before


# -- the session cache ------------------------------------------------------------------------


async def test_logout_racing_a_request_on_the_same_session_still_ends_it(stubs: Stubs) -> None:
    """A request that reads the session while the logout is committing must not
    leave it cached as live: once Logout has returned, the token is dead."""
    account = await stubs.active_account()
    sessions = stubs.app.sessions
    [(session_id,)] = await sql(stubs.app, "SELECT id FROM sessions")
    async with stubs.app.database.transaction() as db:
        await sessions.revoke(db, session_id)
        # Another RPC of this process, between the revoke and its commit.
        await sessions.authenticate(account.tokens.access_token)
    await expect_error(current_user(stubs, account.md), UNAUTHENTICATED, "SESSION_REVOKED")
