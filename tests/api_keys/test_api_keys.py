"""A user's own API keys: made, listed and revoked through ApiKeyService, and used as credentials."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import update

from parley.admin.v1 import admin_pb2
from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from parley.auth.v1 import auth_pb2
from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2
from parley_server.accounts.api_keys import MAX_USABLE_KEYS_PER_OWNER
from parley_server.common.clock import utcnow
from parley_server.db.models import ApiKey
from tests.helpers.accounts import Account, current_user
from tests.helpers.agents import agent_id
from tests.helpers.api_keys import key_md, user_key
from tests.helpers.chat import collect, text_of
from tests.helpers.database import snapshot
from tests.helpers.errors import expect_error, expect_invalid_naming
from tests.helpers.stubs import Stubs


def timestamp_in(delta: timedelta) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(utcnow() + delta)
    return stamp


async def test_secret_is_shown_once_and_never_listed(stubs: Stubs, alice: Account) -> None:
    key, secret = await user_key(stubs, alice, access_pb2.SCOPE_READ, name="export")
    assert secret.startswith("pk_") and len(secret) >= 3 + 43
    assert key.prefix == secret[:12]
    assert key.owner_id == alice.user.id
    assert list(key.scopes) == [access_pb2.SCOPE_READ]
    assert key.HasField("create_time") and not key.HasField("revoke_time") and not key.HasField("last_use_time")
    listed = await stubs.api_keys.ListApiKeys(api_key_pb2.ListApiKeysRequest(), metadata=alice.md)
    assert [k.id for k in listed.api_keys] == [key.id]
    assert secret not in str(listed) and secret[12:] not in listed.SerializeToString().decode("latin-1")
    assert listed.api_keys[0].name == "export"


async def test_keys_are_listed_per_owner_newest_first_in_pages(stubs: Stubs, alice: Account) -> None:
    bob = await stubs.active_account("bob@example.com")
    made = [(await user_key(stubs, alice, name=f"k{i}"))[0].id for i in range(3)]
    await user_key(stubs, bob)
    first = await stubs.api_keys.ListApiKeys(api_key_pb2.ListApiKeysRequest(page_size=2), metadata=alice.md)
    rest = await stubs.api_keys.ListApiKeys(
        api_key_pb2.ListApiKeysRequest(page_size=2, page_token=first.next_page_token), metadata=alice.md
    )
    assert [k.id for k in [*first.api_keys, *rest.api_keys]] == made[::-1]
    assert rest.next_page_token == ""
    # Bob cannot page through Alice's keys with her token.
    await expect_error(
        stubs.api_keys.ListApiKeys(
            api_key_pb2.ListApiKeysRequest(page_size=2, page_token=first.next_page_token), metadata=bob.md
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_a_key_reads_writes_and_chats_as_its_owner(stubs: Stubs, alice: Account) -> None:
    _, secret = await user_key(stubs, alice)
    md = key_md(secret)
    assert (await current_user(stubs, md)).id == alice.user.id
    aid = await agent_id(stubs.app)
    created = await stubs.conversation.CreateConversation(
        conversation_pb2.CreateConversationRequest(agent_id=aid), metadata=md
    )
    cid = created.conversation.id
    got = await stubs.conversation.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=cid), metadata=md
    )
    assert got.conversation.id == cid
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="hello"), metadata=md)
    )
    assert "hello" in text_of(events)
    # The conversation is Alice's: her session sees it too.
    listed = await stubs.conversation.ListConversations(conversation_pb2.ListConversationsRequest(), metadata=alice.md)
    assert cid in [c.id for c in listed.conversations]
    by_key = await stubs.conversation.ListConversations(conversation_pb2.ListConversationsRequest(), metadata=md)
    assert [c.id for c in by_key.conversations] == [c.id for c in listed.conversations]
    # Its use is recorded.
    keys = await stubs.api_keys.ListApiKeys(api_key_pb2.ListApiKeysRequest(), metadata=alice.md)
    assert keys.api_keys[0].HasField("last_use_time")


async def test_revoked_key_is_refused_and_revoking_again_is_harmless(stubs: Stubs, alice: Account) -> None:
    key, secret = await user_key(stubs, alice)
    await current_user(stubs, key_md(secret))
    revoked = await stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=alice.md)
    assert revoked.api_key.HasField("revoke_time")
    details = await expect_error(
        current_user(stubs, key_md(secret)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED"
    )
    assert "revoked" in details.message
    again = await stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=alice.md)
    assert again.api_key.revoke_time == revoked.api_key.revoke_time


async def test_another_users_key_cannot_be_revoked(stubs: Stubs, alice: Account) -> None:
    bob = await stubs.active_account("bob@example.com")
    key, secret = await user_key(stubs, alice)
    await expect_error(
        stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=bob.md),
        grpc.StatusCode.NOT_FOUND,
        "API_KEY_NOT_FOUND",
    )
    assert (await current_user(stubs, key_md(secret))).id == alice.user.id


async def test_unknown_forged_and_expired_keys_are_refused(stubs: Stubs, alice: Account) -> None:
    key, secret = await user_key(stubs, alice)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    for bad in (forged, "pk_" + "x" * 43, "pk_", "pk_" + "y" * 500):
        await expect_error(current_user(stubs, key_md(bad)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    # Expiry passes (set in the database, as time would).
    async with stubs.app.database.transaction() as db:
        await db.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(key.id)).values(expire_time=utcnow() - timedelta(seconds=1))
        )
    await expect_error(current_user(stubs, key_md(secret)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_EXPIRED")


async def test_a_key_with_a_future_expiry_works(stubs: Stubs, alice: Account) -> None:
    response = await stubs.api_keys.CreateApiKey(
        api_key_pb2.CreateApiKeyRequest(
            api_key=api_key_pb2.ApiKey(
                name="day", scopes=[access_pb2.SCOPE_READ], expire_time=timestamp_in(timedelta(days=1))
            )
        ),
        metadata=alice.md,
    )
    assert response.api_key.HasField("expire_time")
    assert (await current_user(stubs, key_md(response.secret))).id == alice.user.id


async def test_keys_of_a_disabled_account_stop_working(stubs: Stubs, alice: Account) -> None:
    admin = await stubs.admin_account()
    _, secret = await user_key(stubs, alice)
    await stubs.admin.UpdateUser(
        admin_pb2.UpdateUserRequest(
            user=auth_pb2.User(id=alice.user.id, state=auth_pb2.USER_STATE_DISABLED),
            update_mask=field_mask_pb2.FieldMask(paths=["state"]),
        ),
        metadata=admin.md,
    )
    await expect_error(current_user(stubs, key_md(secret)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")


async def test_sessions_only_rpcs_refuse_keys(stubs: Stubs, alice: Account) -> None:
    _, secret = await user_key(stubs, alice)
    md = key_md(secret)
    for call in (
        stubs.api_keys.CreateApiKey(
            api_key_pb2.CreateApiKeyRequest(api_key=api_key_pb2.ApiKey(name="x", scopes=[access_pb2.SCOPE_READ])),
            metadata=md,
        ),
        stubs.api_keys.ListApiKeys(api_key_pb2.ListApiKeysRequest(), metadata=md),
        stubs.auth.ChangePassword(
            auth_pb2.ChangePasswordRequest(old_password=alice.password, new_password=alice.password + "!"),
            metadata=md,
        ),
        stubs.auth.Logout(auth_pb2.LogoutRequest(), metadata=md),
    ):
        await expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "API_KEY_NOT_ALLOWED")


async def test_a_missing_scope_is_named(stubs: Stubs, alice: Account) -> None:
    _, secret = await user_key(stubs, alice, access_pb2.SCOPE_READ)
    details = await expect_error(
        stubs.conversation.CreateConversation(
            conversation_pb2.CreateConversationRequest(agent_id=await agent_id(stubs.app)), metadata=key_md(secret)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "SCOPE_REQUIRED",
    )
    assert "SCOPE_WRITE" in details.message


async def test_bad_keys_are_invalid_and_store_nothing(stubs: Stubs, alice: Account) -> None:
    def create(**fields: object) -> object:
        return stubs.api_keys.CreateApiKey(
            api_key_pb2.CreateApiKeyRequest(api_key=api_key_pb2.ApiKey(**fields)),  # type: ignore[arg-type]
            metadata=alice.md,
        )

    read = [access_pb2.SCOPE_READ]
    app = stubs.app
    await expect_invalid_naming(app, create(name="n" * 101, scopes=read), "api_key.name")  # type: ignore[arg-type]
    await expect_invalid_naming(app, create(name="", scopes=read), "api_key.name")  # type: ignore[arg-type]
    await expect_invalid_naming(app, create(name="x"), "api_key.scopes")  # type: ignore[arg-type]
    await expect_invalid_naming(
        app,
        create(name="x", scopes=[access_pb2.SCOPE_READ, 0, 42]),  # type: ignore[arg-type]
        "api_key.scopes[1]",
        "api_key.scopes[2]",
    )
    # Admin scope needs an admin; acting for users needs a service account.
    await expect_invalid_naming(app, create(name="x", scopes=[access_pb2.SCOPE_ADMIN]), "api_key.scopes[0]")  # type: ignore[arg-type]
    await expect_invalid_naming(app, create(name="x", scopes=[access_pb2.SCOPE_ACT_AS_USER]), "api_key.scopes[0]")  # type: ignore[arg-type]
    await expect_invalid_naming(
        app,
        create(name="x", scopes=read, expire_time=timestamp_in(-timedelta(minutes=1))),  # type: ignore[arg-type]
        "api_key.expire_time",
    )
    await expect_invalid_naming(
        app,
        stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id="nope"), metadata=alice.md),
        "api_key_id",
    )


async def test_an_admins_key_with_admin_scope_calls_admin_rpcs(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    _, secret = await user_key(stubs, admin, access_pb2.SCOPE_ADMIN)
    users = await stubs.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=key_md(secret))
    assert admin.user.id in [u.id for u in users.users]


async def test_an_owner_holds_at_most_the_allowed_number_of_usable_keys(stubs: Stubs, alice: Account) -> None:
    made = await asyncio.gather(*(user_key(stubs, alice, name=f"k{i}") for i in range(MAX_USABLE_KEYS_PER_OWNER)))
    before = await snapshot(stubs.app)
    details = await expect_error(user_key(stubs, alice), grpc.StatusCode.FAILED_PRECONDITION, "API_KEY_LIMIT")
    assert "revoke one" in details.message and details.metadata["limit"] == str(MAX_USABLE_KEYS_PER_OWNER)
    assert await snapshot(stubs.app) == before
    # Other owners are not affected.
    bob = await stubs.active_account("bob@example.com")
    await user_key(stubs, bob)
    # A revoked key and an expired one free their places.
    first, second = made[0][0], made[1][0]
    await stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id=first.id), metadata=alice.md)
    await user_key(stubs, alice)
    async with stubs.app.database.transaction() as db:
        await db.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(second.id)).values(expire_time=utcnow() - timedelta(seconds=1))
        )
    await user_key(stubs, alice)
    await expect_error(user_key(stubs, alice), grpc.StatusCode.FAILED_PRECONDITION, "API_KEY_LIMIT")
