"""AdminService waitlist RPCs over real gRPC: listing with positions, and
approval by invite or by activating a waitlisted account."""

from __future__ import annotations

import re
import uuid
from typing import Any

import grpc
from sqlalchemy import select

from parley.admin.v1 import admin_pb2 as pb
from parley.auth.v1 import auth_pb2
from parley_server.db.models import OutboxEmail
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error, expect_invalid_naming
from tests.helpers.stubs import Stubs


async def add_to_waitlist(stubs: Stubs, *emails: str) -> None:
    """Put emails on the waitlist directly (JoinWaitlist itself is tested with AuthService)."""
    for email in emails:
        await stubs.app.auth.join_waitlist(email, f"note from {email}")


async def waitlist(stubs: Stubs, md: tuple[tuple[str, str], ...], **request: Any) -> list[pb.WaitlistEntry]:
    entries: list[pb.WaitlistEntry] = []
    token = ""
    while True:
        page = await stubs.admin.ListWaitlist(pb.ListWaitlistRequest(page_token=token, **request), metadata=md)
        entries += page.entries
        token = page.next_page_token
        if not token:
            return entries


async def approve(stubs: Stubs, md: tuple[tuple[str, str], ...], *ids: str) -> list[pb.WaitlistEntry]:
    response = await stubs.admin.ApproveWaitlistEntries(pb.ApproveWaitlistEntriesRequest(entry_ids=ids), metadata=md)
    return list(response.approved_entries)


async def test_list_waitlist_in_arrival_order_with_live_positions(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    await add_to_waitlist(
        stubs, "w1@example.com", "w2@example.com", "w3@example.com", "w4@example.com", "w5@example.com"
    )
    entries = await waitlist(stubs, admin.md, page_size=2)
    assert [(e.email, e.position) for e in entries] == [(f"w{n}@example.com", n) for n in range(1, 6)]
    assert entries[0].note == "note from w1@example.com" and not entries[0].HasField("approve_time")
    await approve(stubs, admin.md, entries[1].id, entries[3].id)
    pending = await waitlist(stubs, admin.md, page_size=2)
    assert [(e.email, e.position) for e in pending] == [
        ("w1@example.com", 1),
        ("w3@example.com", 2),
        ("w5@example.com", 3),
    ]
    # Positions on a later page count the entries ahead of it.
    first = await stubs.admin.ListWaitlist(pb.ListWaitlistRequest(page_size=2), metadata=admin.md)
    second = await stubs.admin.ListWaitlist(
        pb.ListWaitlistRequest(page_size=2, page_token=first.next_page_token), metadata=admin.md
    )
    assert [(e.email, e.position) for e in second.entries] == [("w5@example.com", 3)]
    everything = await waitlist(stubs, admin.md, page_size=2, include_approved=True)
    assert [(e.email, e.position) for e in everything] == [
        ("w1@example.com", 1),
        ("w3@example.com", 2),
        ("w5@example.com", 3),
        ("w2@example.com", 0),
        ("w4@example.com", 0),
    ]
    assert everything[3].HasField("approve_time")
    # The public JoinWaitlist answer agrees with the admin view.
    response = await stubs.auth.JoinWaitlist(auth_pb2.JoinWaitlistRequest(email="w5@example.com"))
    assert response.position == 3


async def test_list_waitlist_rejects_bad_input(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    await add_to_waitlist(stubs, "w1@example.com", "w2@example.com")
    first = await stubs.admin.ListWaitlist(pb.ListWaitlistRequest(page_size=1), metadata=admin.md)
    call = stubs.admin.ListWaitlist
    await expect_invalid_naming(stubs.app, call(pb.ListWaitlistRequest(page_size=-5), metadata=admin.md), "page_size")
    tampered = first.next_page_token[:-3] + "abc"
    await expect_invalid_naming(
        stubs.app, call(pb.ListWaitlistRequest(page_token=tampered), metadata=admin.md), "page_token"
    )
    other_query = pb.ListWaitlistRequest(page_token=first.next_page_token, include_approved=True)
    await expect_invalid_naming(stubs.app, call(other_query, metadata=admin.md), "page_token")


async def test_approving_an_email_without_account_sends_an_invite(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    await add_to_waitlist(stubs, "new@example.com")
    [entry] = await waitlist(stubs, admin.md)
    [approved] = await approve(stubs, admin.md, entry.id)
    assert approved.id == entry.id and approved.invite_sent and approved.position == 0
    assert approved.HasField("approve_time")
    assert await stubs.emailed_subjects("new@example.com") == ["You are invited to Parley"]
    invites = await sql(stubs.app, "SELECT count(*) FROM invites WHERE email = 'new@example.com' AND use_time IS NULL")
    assert invites[0][0] == 1
    # Approving again changes nothing and sends nothing.
    before = await snapshot(stubs.app)
    [again] = await approve(stubs, admin.md, entry.id)
    assert again == approved
    assert await snapshot(stubs.app) == before


async def test_approving_waitlisted_accounts_activates_them(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    await stubs.register("unverified@example.com")
    verified = await stubs.active_account("verified@example.com")
    await stubs.register("active@example.com")
    await sql(
        stubs.app,
        "UPDATE users SET state = 'waitlisted' WHERE email IN ('unverified@example.com', 'verified@example.com')",
    )
    await add_to_waitlist(stubs, "unverified@example.com", "verified@example.com", "active@example.com")
    await expect_error(stubs.login("verified@example.com"), grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_WAITLISTED")
    ids = [e.id for e in await waitlist(stubs, admin.md)]
    approved = await approve(stubs, admin.md, *reversed(ids))
    assert [e.email for e in approved] == ["active@example.com", "verified@example.com", "unverified@example.com"]
    assert not any(e.invite_sent for e in approved)
    states = dict(await sql(stubs.app, "SELECT email, state::text FROM users"))
    assert states["unverified@example.com"] == "pending_verification"
    assert states["verified@example.com"] == "active"
    assert states["active@example.com"] == "pending_verification"  # not waitlisted: left alone
    activated = "Your Parley account is active"
    assert activated in await stubs.emailed_subjects("unverified@example.com")
    assert activated in await stubs.emailed_subjects("verified@example.com")
    assert activated not in await stubs.emailed_subjects("active@example.com")
    assert (await sql(stubs.app, "SELECT count(*) FROM invites"))[0][0] == 0
    again = await stubs.login("verified@example.com")
    me = await stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=again.md)
    assert me.user.id == verified.user.id and me.user.state == auth_pb2.USER_STATE_ACTIVE


async def test_approve_is_all_or_nothing_and_checks_its_input(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    await add_to_waitlist(stubs, "w1@example.com", "w2@example.com")
    ids = [e.id for e in await waitlist(stubs, admin.md)]
    call = stubs.admin.ApproveWaitlistEntries
    before = await snapshot(stubs.app)
    unknown = str(uuid.uuid4())
    details = await expect_error(
        call(pb.ApproveWaitlistEntriesRequest(entry_ids=[ids[0], unknown, ids[1]]), metadata=admin.md),
        grpc.StatusCode.NOT_FOUND,
        "WAITLIST_ENTRY_NOT_FOUND",
    )
    assert unknown in details.message
    assert await snapshot(stubs.app) == before
    md = admin.md
    await expect_invalid_naming(stubs.app, call(pb.ApproveWaitlistEntriesRequest(), metadata=md), "entry_ids")
    await expect_invalid_naming(
        stubs.app, call(pb.ApproveWaitlistEntriesRequest(entry_ids=[ids[0], "bad"]), metadata=md), "entry_ids[1]"
    )
    too_many = [str(uuid.uuid4()) for _ in range(101)]
    await expect_invalid_naming(
        stubs.app, call(pb.ApproveWaitlistEntriesRequest(entry_ids=too_many), metadata=md), "entry_ids"
    )
    # Duplicates are approved once and echoed in request order.
    approved = await approve(stubs, md, ids[1], ids[0], ids[1])
    assert [e.id for e in approved] == [ids[1], ids[0], ids[1]]
    assert (await sql(stubs.app, "SELECT count(*) FROM invites"))[0][0] == 2


async def test_approved_people_get_past_a_waitlist_that_is_on(wl: Stubs) -> None:
    """End to end on a server with the waitlist on: the waitlisted account can log
    in once approved, and the invited email can register with the emailed code."""
    admin = await wl.admin_account()
    waiting = await wl.register("waiting@example.com")
    assert waiting.state == auth_pb2.USER_STATE_WAITLISTED
    await expect_error(wl.login("waiting@example.com"), grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_WAITLISTED")
    await wl.auth.JoinWaitlist(auth_pb2.JoinWaitlistRequest(email="friend@example.com"))
    approved = await approve(wl, admin.md, *[e.id for e in await waitlist(wl, admin.md)])
    assert [(e.email, e.invite_sent) for e in approved] == [
        ("waiting@example.com", False),
        ("friend@example.com", True),
    ]
    await wl.login("waiting@example.com")
    async with wl.app.database.transaction() as db:
        body = await db.scalar(select(OutboxEmail.body).where(OutboxEmail.recipient == "friend@example.com"))
    code = re.search(r"invite code: (\S+)", body or "")
    assert code, body
    friend = await wl.register("friend@example.com", invite_code=code.group(1))
    assert friend.state == auth_pb2.USER_STATE_PENDING_VERIFICATION
