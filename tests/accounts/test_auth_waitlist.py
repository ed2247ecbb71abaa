"""JoinWaitlist, and registration on a server running with the waitlist on."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text

from parley.auth.v1 import auth_pb2
from parley_server.app import App
from tests.helpers.accounts import PASSWORD
from tests.helpers.database import snapshot
from tests.helpers.errors import expect_error
from tests.helpers.stubs import Stubs


async def join(stubs: Stubs, email: str, note: str = "") -> int:
    response: auth_pb2.JoinWaitlistResponse = await stubs.auth.JoinWaitlist(
        auth_pb2.JoinWaitlistRequest(email=email, note=note)
    )
    return response.position


async def waitlist_rows(app: App) -> list[tuple[str, str]]:
    async with app.database.transaction() as db:
        rows = await db.execute(text("SELECT email, note FROM waitlist_entries ORDER BY seq"))
        return [(email, note) for email, note in rows.all()]


# -- JoinWaitlist ---------------------------------------------------------------


async def test_join_waitlist_positions_follow_arrival(stubs: Stubs) -> None:
    assert await join(stubs, "a@example.com") == 1
    assert await join(stubs, "b@example.com", "I build agents") == 2
    assert await join(stubs, "c@example.com") == 3
    assert await waitlist_rows(stubs.app) == [
        ("a@example.com", ""),
        ("b@example.com", "I build agents"),
        ("c@example.com", ""),
    ]


async def test_join_waitlist_is_idempotent(stubs: Stubs) -> None:
    assert await join(stubs, "a@example.com") == 1
    assert await join(stubs, "b@example.com") == 2
    before = await snapshot(stubs.app)
    # Same email again, even spelled differently: same position, no new entry.
    assert await join(stubs, "b@example.com") == 2
    assert await join(stubs, "  B@Example.COM ") == 2
    assert await snapshot(stubs.app) == before
    # A later arrival still lines up behind.
    assert await join(stubs, "c@example.com") == 3


async def test_join_waitlist_positions_skip_approved_entries(stubs: Stubs) -> None:
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        await join(stubs, email)
    async with stubs.app.database.transaction() as db:
        await db.execute(text("UPDATE waitlist_entries SET approve_time = now() WHERE email = 'a@example.com'"))
    assert await join(stubs, "c@example.com") == 2
    assert await join(stubs, "a@example.com") == 0


JOIN_CASES: dict[str, tuple[str, str, set[str]]] = {
    "empty": ("", "", {"email"}),
    "malformed": ("not-an-email", "", {"email"}),
    "300 chars": ("a" * 288 + "@example.com", "", {"email"}),
    "note too long": ("a@example.com", "n" * 1001, {"note"}),
    "note control char": ("a@example.com", "bell\x07", {"note"}),
    "both": ("bad", "n" * 1001, {"email", "note"}),
}


async def test_join_waitlist_rejects_bad_input(stubs: Stubs, subtests: pytest.Subtests) -> None:
    await join(stubs, "first@example.com")
    before = await snapshot(stubs.app)
    for case, (email, note, fields) in JOIN_CASES.items():
        with subtests.test(case):
            details = await expect_error(
                stubs.auth.JoinWaitlist(auth_pb2.JoinWaitlistRequest(email=email, note=note)),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert set(details.violations) == fields
            assert await snapshot(stubs.app) == before
    # A note of exactly 1000 characters is fine.
    assert await join(stubs, "a@example.com", "n" * 1000) == 2


# -- registration with the waitlist on ------------------------------------------


async def test_without_invite_the_account_is_waitlisted_and_cannot_log_in(wl: Stubs) -> None:
    user = await wl.register("Wendy@Example.com")
    assert user.state == auth_pb2.USER_STATE_WAITLISTED
    assert user.email == "wendy@example.com"
    # It is on the waitlist, and JoinWaitlist reports that same place.
    assert await waitlist_rows(wl.app) == [("wendy@example.com", "")]
    assert await join(wl, "wendy@example.com") == 1
    await expect_error(
        wl.auth.Login(auth_pb2.LoginRequest(email="wendy@example.com", password=PASSWORD)),
        grpc.StatusCode.PERMISSION_DENIED,
        "ACCOUNT_WAITLISTED",
    )
    # A wrong password does not reveal the account's state.
    await expect_error(
        wl.auth.Login(auth_pb2.LoginRequest(email="wendy@example.com", password="wrong password!")),
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    )
    # Verifying the email does not let it skip the waitlist.
    verified = await wl.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=await wl.emailed_token("wendy@example.com")))
    assert verified.user.state == auth_pb2.USER_STATE_WAITLISTED
    await expect_error(
        wl.auth.Login(auth_pb2.LoginRequest(email="wendy@example.com", password=PASSWORD)),
        grpc.StatusCode.PERMISSION_DENIED,
        "ACCOUNT_WAITLISTED",
    )


async def test_invite_code_skips_the_waitlist_once(wl: Stubs) -> None:
    code = await wl.app.auth.create_invite(None)
    user = await wl.register("ivy@example.com", invite_code=code)
    assert user.state == auth_pb2.USER_STATE_PENDING_VERIFICATION
    assert await waitlist_rows(wl.app) == []
    await wl.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=await wl.emailed_token("ivy@example.com")))
    assert (await wl.login("ivy@example.com")).user.state == auth_pb2.USER_STATE_ACTIVE
    # The code is spent: the next registration with it is waitlisted.
    second = await wl.register("jack@example.com", invite_code=code)
    assert second.state == auth_pb2.USER_STATE_WAITLISTED


async def test_invite_bound_to_another_email_does_not_work(wl: Stubs) -> None:
    code = await wl.app.auth.create_invite("kim@example.com")
    intruder = await wl.register("mallory@example.com", invite_code=code)
    assert intruder.state == auth_pb2.USER_STATE_WAITLISTED
    # The code was not used up by that attempt: its owner still gets in,
    # whatever case they type their email in.
    owner = await wl.register("KIM@example.com", invite_code=code)
    assert owner.state == auth_pb2.USER_STATE_PENDING_VERIFICATION


async def test_unknown_or_expired_invite_code_is_waitlisted(wl: Stubs) -> None:
    assert (await wl.register("a@example.com", invite_code="no-such-code")).state == auth_pb2.USER_STATE_WAITLISTED
    code = await wl.app.auth.create_invite(None)
    async with wl.app.database.transaction() as db:
        await db.execute(text("UPDATE invites SET expire_time = now() - interval '1 minute'"))
    assert (await wl.register("b@example.com", invite_code=code)).state == auth_pb2.USER_STATE_WAITLISTED


async def test_failed_registration_does_not_spend_the_invite(wl: Stubs) -> None:
    await wl.register("taken@example.com")
    code = await wl.app.auth.create_invite(None)
    await expect_error(
        wl.register("taken@example.com", invite_code=code), grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN"
    )
    assert (await wl.register("new@example.com", invite_code=code)).state == auth_pb2.USER_STATE_PENDING_VERIFICATION


async def test_waitlist_off_registers_without_invite(stubs: Stubs) -> None:
    """The main test server runs with the waitlist off."""
    assert (await stubs.register("a@example.com")).state == auth_pb2.USER_STATE_PENDING_VERIFICATION
    assert await waitlist_rows(stubs.app) == []
