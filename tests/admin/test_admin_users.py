"""AdminService user management over real gRPC: access, listing, updates, the
last-admin guard, disabling and deleting accounts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from parley.admin.v1 import admin_pb2 as pb
from parley.auth.v1 import auth_pb2
from parley.conversation.v1 import conversation_pb2
from parley_server.admin.service import UserChanges
from parley_server.common.errors import FailedPrecondition
from parley_server.db.models import Role, UserState
from tests.helpers.accounts import Account, Metadata
from tests.helpers.api_keys import service_account
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error, expect_invalid_naming
from tests.helpers.stubs import Stubs

NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def list_emails(stubs: Stubs, md: Metadata, **request: Any) -> list[str]:
    response = await stubs.admin.ListUsers(pb.ListUsersRequest(**request), metadata=md)
    return [u.email for u in response.users]


def update(user_id: str, paths: list[str], **fields: Any) -> pb.UpdateUserRequest:
    """An UpdateUserRequest for user_id with update_mask paths and User fields."""
    return pb.UpdateUserRequest(user=auth_pb2.User(id=user_id, **fields), update_mask=FieldMask(paths=paths))


# -- access -------------------------------------------------------------------

ADMIN_CALLS: list[tuple[str, Message]] = [
    ("ListUsers", pb.ListUsersRequest()),
    ("GetUser", pb.GetUserRequest(user_id=str(uuid.uuid4()))),
    ("UpdateUser", update(str(uuid.uuid4()), ["premium"], premium=True)),
    ("DeleteUser", pb.DeleteUserRequest(user_id=str(uuid.uuid4()))),
    ("ListWaitlist", pb.ListWaitlistRequest()),
    ("ApproveWaitlistEntries", pb.ApproveWaitlistEntriesRequest(entry_ids=[str(uuid.uuid4())])),
    ("GetStats", pb.GetStatsRequest()),
    ("GetSystemHealth", pb.GetSystemHealthRequest()),
    ("CleanupEmptyConversations", pb.CleanupEmptyConversationsRequest()),
]


async def test_every_admin_rpc_refuses_users_and_anonymous_callers(stubs: Stubs) -> None:
    user = await stubs.active_account()
    before = await snapshot(stubs.app)
    for method, request in ADMIN_CALLS:
        rpc = getattr(stubs.admin, method)
        await expect_error(rpc(request, metadata=user.md), grpc.StatusCode.PERMISSION_DENIED, "ADMIN_REQUIRED")
        await expect_error(rpc(request), UNAUTHENTICATED, "TOKEN_MISSING")
    assert await snapshot(stubs.app) == before


# -- ListUsers / GetUser --------------------------------------------------------


async def test_list_users_pages_newest_first_and_stay_stable_while_users_register(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    for n in range(5):
        await stubs.register(f"user{n}@example.com")
    first = await stubs.admin.ListUsers(pb.ListUsersRequest(page_size=2), metadata=admin.md)
    assert [u.email for u in first.users] == ["user4@example.com", "user3@example.com"]
    await stubs.register("late@example.com")  # newer than every page: must not shift them
    seen = [u.email for u in first.users]
    token = first.next_page_token
    while token:
        page = await stubs.admin.ListUsers(pb.ListUsersRequest(page_size=2, page_token=token), metadata=admin.md)
        seen += [u.email for u in page.users]
        token = page.next_page_token
    assert seen == [f"user{n}@example.com" for n in (4, 3, 2, 1, 0)] + ["root@example.com"]
    everyone = await list_emails(stubs, admin.md)
    assert everyone[0] == "late@example.com" and len(everyone) == 7


async def test_list_users_filters(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account("ada@example.com")
    await stubs.register("a_b@example.com")
    await stubs.register("axb@example.com")
    await stubs.register("100%@example.com")
    await stubs.admin.UpdateUser(update(ada.user.id, ["premium"], premium=True), metadata=admin.md)
    md = admin.md
    assert await list_emails(stubs, md, email_contains="ADA@") == ["ada@example.com"]
    # LIKE wildcards are literal characters here.
    assert await list_emails(stubs, md, email_contains="a_b") == ["a_b@example.com"]
    assert await list_emails(stubs, md, email_contains="0%") == ["100%@example.com"]
    assert await list_emails(stubs, md, role=auth_pb2.ROLE_ADMIN) == ["root@example.com"]
    assert await list_emails(stubs, md, state=auth_pb2.USER_STATE_ACTIVE) == ["ada@example.com", "root@example.com"]
    assert await list_emails(stubs, md, premium=True) == ["ada@example.com"]
    assert "ada@example.com" not in await list_emails(stubs, md, premium=False)
    assert len(await list_emails(stubs, md, premium=False)) == 4
    both = await list_emails(stubs, md, email_contains="example", state=auth_pb2.USER_STATE_PENDING_VERIFICATION)
    assert sorted(both) == ["100%@example.com", "a_b@example.com", "axb@example.com"]


async def test_list_users_rejects_bad_input(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    for n in range(3):
        await stubs.register(f"user{n}@example.com")
    app, md = stubs.app, admin.md
    page = await stubs.admin.ListUsers(pb.ListUsersRequest(page_size=1), metadata=md)
    token = page.next_page_token
    call = stubs.admin.ListUsers
    await expect_invalid_naming(app, call(pb.ListUsersRequest(page_size=-1), metadata=md), "page_size")
    await expect_invalid_naming(app, call(pb.ListUsersRequest(page_token=token[:-2] + "AA"), metadata=md), "page_token")
    await expect_invalid_naming(app, call(pb.ListUsersRequest(page_token="garbage"), metadata=md), "page_token")
    # A token is bound to the filters of the query that made it.
    await expect_invalid_naming(
        app, call(pb.ListUsersRequest(page_token=token, email_contains="user"), metadata=md), "page_token"
    )
    await expect_invalid_naming(app, call(pb.ListUsersRequest(role=7), metadata=md), "role")  # type: ignore[arg-type]
    await expect_invalid_naming(app, call(pb.ListUsersRequest(state=-1), metadata=md), "state")  # type: ignore[arg-type]
    await expect_invalid_naming(app, call(pb.ListUsersRequest(email_contains="x" * 255), metadata=md), "email_contains")
    await expect_invalid_naming(app, call(pb.ListUsersRequest(email_contains="a\x00"), metadata=md), "email_contains")


async def test_get_user(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account()
    got = await stubs.admin.GetUser(pb.GetUserRequest(user_id=ada.user.id), metadata=admin.md)
    assert got.user.email == "ada@example.com"
    assert got.user.state == auth_pb2.USER_STATE_ACTIVE and got.user.email_verified
    assert got.user.HasField("last_login_time")
    missing = pb.GetUserRequest(user_id=str(uuid.uuid4()))
    await expect_error(stubs.admin.GetUser(missing, metadata=admin.md), NOT_FOUND, "USER_NOT_FOUND")
    await expect_invalid_naming(
        stubs.app, stubs.admin.GetUser(pb.GetUserRequest(user_id="42"), metadata=admin.md), "user_id"
    )
    await expect_invalid_naming(stubs.app, stubs.admin.GetUser(pb.GetUserRequest(), metadata=admin.md), "user_id")


# -- UpdateUser ----------------------------------------------------------------


async def test_update_user_applies_only_the_masked_fields(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account()
    response = await stubs.admin.UpdateUser(
        update(
            ada.user.id, ["display_name", "premium"], display_name=" Ada L. ", premium=True, role=auth_pb2.ROLE_ADMIN
        ),
        metadata=admin.md,
    )
    assert response.user.display_name == "Ada L." and response.user.premium
    assert response.user.role == auth_pb2.ROLE_USER  # role was not in the mask
    # Fields outside the mask are not even read: an unknown enum there is fine.
    await stubs.admin.UpdateUser(update(ada.user.id, ["premium"], premium=False, role=99), metadata=admin.md)
    me = await stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=ada.md)
    assert not me.user.premium and me.user.display_name == "Ada L."


async def test_role_change_takes_effect_on_the_next_call(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account()
    health = pb.GetSystemHealthRequest()
    await expect_error(stubs.admin.GetSystemHealth(health, metadata=ada.md), grpc.StatusCode.PERMISSION_DENIED)
    await stubs.admin.UpdateUser(update(ada.user.id, ["role"], role=auth_pb2.ROLE_ADMIN), metadata=admin.md)
    await stubs.admin.GetSystemHealth(health, metadata=ada.md)  # the cached caller was dropped
    await stubs.admin.UpdateUser(update(ada.user.id, ["role"], role=auth_pb2.ROLE_USER), metadata=admin.md)
    await expect_error(stubs.admin.GetSystemHealth(health, metadata=ada.md), grpc.StatusCode.PERMISSION_DENIED)


async def test_update_user_rejects_bad_input(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account()
    app, md, uid = stubs.app, admin.md, ada.user.id
    call = stubs.admin.UpdateUser
    await expect_invalid_naming(app, call(update(uid, [], premium=True), metadata=md), "update_mask")
    await expect_invalid_naming(app, call(update(uid, ["premium", "email"]), metadata=md), "update_mask.paths")
    await expect_invalid_naming(app, call(update(uid, ["role"]), metadata=md), "user.role")
    await expect_invalid_naming(app, call(update(uid, ["state"]), metadata=md), "user.state")
    await expect_invalid_naming(app, call(update(uid, ["role"], role=3), metadata=md), "user.role")
    await expect_invalid_naming(app, call(update(uid, ["state"], state=9), metadata=md), "user.state")
    await expect_invalid_naming(
        app, call(update(uid, ["display_name"], display_name="x" * 101), metadata=md), "user.display_name"
    )
    await expect_invalid_naming(app, call(update("nope", ["premium"]), metadata=md), "user.id")
    # Several problems are reported together.
    await expect_invalid_naming(
        app, call(update("", ["role", "bogus"]), metadata=md), "user.id", "update_mask.paths", "user.role"
    )
    missing = update(str(uuid.uuid4()), ["premium"], premium=True)
    await expect_error(call(missing, metadata=md), NOT_FOUND, "USER_NOT_FOUND")


async def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(stubs: Stubs) -> None:
    root = await stubs.admin_account()
    app, md, uid = stubs.app, root.md, root.user.id
    before = await snapshot(app)
    demote = update(uid, ["role"], role=auth_pb2.ROLE_USER)
    disable = update(uid, ["state"], state=auth_pb2.USER_STATE_DISABLED)
    for request in (demote, disable, update(uid, ["state"], state=auth_pb2.USER_STATE_WAITLISTED)):
        await expect_error(stubs.admin.UpdateUser(request, metadata=md), FAILED_PRECONDITION, "LAST_ADMIN")
    await expect_error(
        stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id=uid), metadata=md), FAILED_PRECONDITION, "LAST_ADMIN"
    )
    assert await snapshot(app) == before
    # A disabled admin does not count as another admin.
    other = await stubs.admin_account("other@example.com")
    await stubs.admin.UpdateUser(update(other.user.id, ["state"], state=auth_pb2.USER_STATE_DISABLED), metadata=md)
    await expect_error(stubs.admin.UpdateUser(demote, metadata=md), FAILED_PRECONDITION, "LAST_ADMIN")
    # With another active admin, demoting works; harmless changes always do.
    await stubs.admin.UpdateUser(update(other.user.id, ["state"], state=auth_pb2.USER_STATE_ACTIVE), metadata=md)
    await stubs.admin.UpdateUser(update(uid, ["display_name"], display_name="Root"), metadata=md)
    demoted = await stubs.admin.UpdateUser(demote, metadata=md)
    assert demoted.user.role == auth_pb2.ROLE_USER


async def test_demoting_two_admins_at_once_leaves_one(stubs: Stubs) -> None:
    """The guard is race-free: of two concurrent demotions of the last two admins,
    exactly one wins. Called on the domain service, so both are in flight past
    authentication before either commits."""
    service = stubs.app.admin
    for attempt in range(5):
        a = await stubs.admin_account(f"a{attempt}@example.com")
        b = await stubs.admin_account(f"b{attempt}@example.com")
        caller = await stubs.app.sessions.authenticate(a.tokens.access_token)
        results = await asyncio.gather(
            service.update_user(caller, a.user.id, ["role"], UserChanges(role=Role.USER)),
            service.update_user(caller, b.user.id, ["state"], UserChanges(state=UserState.DISABLED)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(failures) == 1, results
        assert isinstance(failures[0], FailedPrecondition) and failures[0].reason == "LAST_ADMIN"
        rows = await sql(stubs.app, "SELECT count(*) FROM users WHERE role = 'admin' AND state = 'active'")
        assert rows[0][0] == 1
        await sql(stubs.app, "DELETE FROM users")
        stubs.app.sessions.clear_cache()


async def test_disabling_cuts_off_existing_tokens_at_once_and_enabling_restores_login(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account()
    me = auth_pb2.GetCurrentUserRequest()
    await stubs.auth.GetCurrentUser(me, metadata=ada.md)  # the caller is cached now
    disabled = await stubs.admin.UpdateUser(
        update(ada.user.id, ["state"], state=auth_pb2.USER_STATE_DISABLED), metadata=admin.md
    )
    assert disabled.user.state == auth_pb2.USER_STATE_DISABLED
    await expect_error(stubs.auth.GetCurrentUser(me, metadata=ada.md), UNAUTHENTICATED, "SESSION_REVOKED")
    refresh = auth_pb2.RefreshTokenRequest(refresh_token=ada.tokens.refresh_token)
    await expect_error(stubs.auth.RefreshToken(refresh), UNAUTHENTICATED)
    await expect_error(stubs.login("ada@example.com"), grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_DISABLED")
    live = await sql(
        stubs.app, "SELECT count(*) FROM sessions WHERE revoke_time IS NULL AND user_id = :u", u=ada.user.id
    )
    assert live[0][0] == 0
    await stubs.admin.UpdateUser(update(ada.user.id, ["state"], state=auth_pb2.USER_STATE_ACTIVE), metadata=admin.md)
    again = await stubs.login("ada@example.com")
    await stubs.auth.GetCurrentUser(me, metadata=again.md)


# -- DeleteUser -----------------------------------------------------------------


async def test_delete_user_removes_everything_they_own(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    conversation = await new_conversation(stubs, ada, "Ada's")
    await add_message(stubs, ada, conversation.id, "hello")
    kept = await new_conversation(stubs, bob, "Bob's")
    await stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id=ada.user.id), metadata=admin.md)
    await expect_error(
        stubs.admin.GetUser(pb.GetUserRequest(user_id=ada.user.id), metadata=admin.md), NOT_FOUND, "USER_NOT_FOUND"
    )
    await expect_error(stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=ada.md), UNAUTHENTICATED)
    for table in ("conversations", "sessions", "email_tokens", "usage_daily"):
        rows = await sql(stubs.app, f"SELECT count(*) FROM {table} WHERE user_id = :u", u=ada.user.id)
        assert rows[0][0] == 0, table
    orphans = await sql(stubs.app, "SELECT count(*) FROM messages WHERE conversation_id = :c", c=conversation.id)
    assert orphans[0][0] == 0
    request = conversation_pb2.GetConversationRequest(conversation_id=kept.id)
    await stubs.conversation.GetConversation(request, metadata=bob.md)
    gone = pb.DeleteUserRequest(user_id=ada.user.id)
    await expect_error(stubs.admin.DeleteUser(gone, metadata=admin.md), NOT_FOUND, "USER_NOT_FOUND")
    await expect_invalid_naming(
        stubs.app, stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id="x"), metadata=admin.md), "user_id"
    )


async def test_an_admin_can_delete_another_admin_but_not_the_last(stubs: Stubs) -> None:
    root = await stubs.admin_account()
    other: Account = await stubs.admin_account("other@example.com")
    await stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id=other.user.id), metadata=root.md)
    await expect_error(
        stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id=root.user.id), metadata=root.md),
        FAILED_PRECONDITION,
        "LAST_ADMIN",
    )


async def test_the_last_admin_cannot_delete_their_own_account(stubs: Stubs) -> None:
    admin = await stubs.admin_account("only-admin@example.com")
    await expect_error(
        stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=admin.password), metadata=admin.md),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LAST_ADMIN",
    )
    second = await stubs.admin_account("second-admin@example.com")
    await stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=admin.password), metadata=admin.md)
    me = await stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=second.md)
    assert me.user.email == "second-admin@example.com"


async def test_service_accounts_are_not_users_to_the_admin_user_rpcs(stubs: Stubs) -> None:
    """They are managed by ServiceAccountService; here an admin can neither list,
    promote, disable nor delete one, nor see it counted among the users."""
    admin = await stubs.admin_account()
    stats_before = await stubs.admin.GetStats(pb.GetStatsRequest(), metadata=admin.md)
    account = await service_account(stubs, admin)
    assert await list_emails(stubs, admin.md) == [admin.user.email]
    before = await snapshot(stubs.app)
    for call in (
        stubs.admin.GetUser(pb.GetUserRequest(user_id=account.id), metadata=admin.md),
        stubs.admin.UpdateUser(update(account.id, ["role"], role=auth_pb2.ROLE_ADMIN), metadata=admin.md),
        stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id=account.id), metadata=admin.md),
    ):
        await expect_error(call, NOT_FOUND, "USER_NOT_FOUND")
    assert await snapshot(stubs.app) == before
    stubs.app.admin.clear_stats_cache()
    stats = await stubs.admin.GetStats(pb.GetStatsRequest(), metadata=admin.md)
    assert stats.stats.total_users == stats_before.stats.total_users == 1
