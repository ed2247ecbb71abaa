"""Service accounts: managed by admins, acting through keys, on their own or on behalf of a user."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from parley.auth.v1 import auth_pb2
from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2
from parley_server.db.models import User, UserKind
from tests.helpers.accounts import Account, current_user
from tests.helpers.agents import agent_id
from tests.helpers.api_keys import ALL_USER_SCOPES, key_md, service_account, service_account_key, user_key
from tests.helpers.chat import collect, text_of
from tests.helpers.database import sql
from tests.helpers.errors import expect_error, expect_invalid_naming
from tests.helpers.in_process import second_server
from tests.helpers.stubs import Stubs

ACTING = (*ALL_USER_SCOPES, access_pb2.SCOPE_ACT_AS_USER)


@pytest.fixture
async def admin(stubs: Stubs) -> Account:
    return await stubs.admin_account()


async def test_admins_create_list_and_delete_service_accounts(stubs: Stubs, admin: Account) -> None:
    first = await service_account(stubs, admin, "billing")
    second = await service_account(stubs, admin, "search")
    listed = await stubs.service_accounts.ListServiceAccounts(
        api_key_pb2.ListServiceAccountsRequest(), metadata=admin.md
    )
    assert [(a.id, a.display_name) for a in listed.service_accounts] == [
        (second.id, "search"),
        (first.id, "billing"),
    ]
    _, secret = await service_account_key(stubs, admin, first.id)
    await stubs.service_accounts.DeleteServiceAccount(
        api_key_pb2.DeleteServiceAccountRequest(service_account_id=first.id), metadata=admin.md
    )
    await expect_error(current_user(stubs, key_md(secret)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    await expect_error(
        stubs.service_accounts.DeleteServiceAccount(
            api_key_pb2.DeleteServiceAccountRequest(service_account_id=first.id), metadata=admin.md
        ),
        grpc.StatusCode.NOT_FOUND,
        "SERVICE_ACCOUNT_NOT_FOUND",
    )


async def test_a_user_is_not_a_service_account(stubs: Stubs, admin: Account, alice: Account) -> None:
    await expect_error(
        stubs.service_accounts.CreateServiceAccountKey(
            api_key_pb2.CreateServiceAccountKeyRequest(
                service_account_id=alice.user.id,
                api_key=api_key_pb2.ApiKey(name="x", scopes=[access_pb2.SCOPE_READ]),
            ),
            metadata=admin.md,
        ),
        grpc.StatusCode.NOT_FOUND,
        "SERVICE_ACCOUNT_NOT_FOUND",
    )


async def test_service_accounts_cannot_log_in(stubs: Stubs, admin: Account) -> None:
    account = await service_account(stubs, admin)
    async with stubs.app.database.transaction() as db:
        row = await db.get(User, uuid.UUID(account.id))
        assert row is not None and row.kind is UserKind.SERVICE_ACCOUNT
        email = row.email
    # Its password hash is empty: not even the password verified when there is no hash gets in.
    for password in ("parley-dummy-password", "x" * 12):
        await expect_error(
            stubs.auth.Login(auth_pb2.LoginRequest(email=email, password=password)),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_CREDENTIALS",
        )


async def test_a_service_account_owns_its_conversations(stubs: Stubs, admin: Account) -> None:
    account = await service_account(stubs, admin)
    key, secret = await service_account_key(stubs, admin, account.id)
    md = key_md(secret)
    assert (await current_user(stubs, md)).id == account.id
    created = await stubs.conversation.CreateConversation(
        conversation_pb2.CreateConversationRequest(agent_id=await agent_id(stubs.app)), metadata=md
    )
    assert created.conversation.id
    keys = await stubs.service_accounts.ListServiceAccountKeys(
        api_key_pb2.ListServiceAccountKeysRequest(service_account_id=account.id), metadata=admin.md
    )
    assert [k.id for k in keys.api_keys] == [key.id]
    assert keys.api_keys[0].owner_id == account.id
    revoked = await stubs.service_accounts.RevokeServiceAccountKey(
        api_key_pb2.RevokeServiceAccountKeyRequest(service_account_id=account.id, api_key_id=key.id),
        metadata=admin.md,
    )
    assert revoked.api_key.HasField("revoke_time")
    await expect_error(current_user(stubs, md), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")


async def test_on_behalf_of_a_user_the_conversation_is_the_users(
    stubs: Stubs, admin: Account, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    account = await service_account(stubs, admin)
    key, secret = await service_account_key(stubs, admin, account.id, *ACTING)
    md = key_md(secret, on_behalf_of=alice.user.id)
    caplog.set_level(logging.INFO, logger="parley.rpc")
    created = await stubs.conversation.CreateConversation(
        conversation_pb2.CreateConversationRequest(agent_id=await agent_id(stubs.app)), metadata=md
    )
    cid = created.conversation.id
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="hi there"), metadata=md)
    )
    assert "hi there" in text_of(events)
    # It is Alice's conversation: her own session lists it; the service account's own list does not.
    mine = await stubs.conversation.ListConversations(conversation_pb2.ListConversationsRequest(), metadata=alice.md)
    assert [c.id for c in mine.conversations] == [cid]
    own = await stubs.conversation.ListConversations(
        conversation_pb2.ListConversationsRequest(), metadata=key_md(secret)
    )
    assert list(own.conversations) == []
    # The log line names both principals.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "parley.rpc"]
    line = next(entry for entry in lines if entry["rpc"].endswith("/CreateConversation"))
    assert (line["user"], line["principal"], line["api_key"]) == (alice.user.id, account.id, key.id)


async def test_acting_for_a_user_needs_the_scope_and_a_service_account(
    stubs: Stubs, admin: Account, alice: Account
) -> None:
    account = await service_account(stubs, admin)
    _, plain = await service_account_key(stubs, admin, account.id)
    bob = await stubs.active_account("bob@example.com")
    _, bobs_key = await user_key(stubs, bob)
    for md in (
        key_md(plain, on_behalf_of=alice.user.id),
        key_md(bobs_key, on_behalf_of=alice.user.id),
        (*bob.md, ("x-parley-on-behalf-of", alice.user.id)),
    ):
        await expect_error(current_user(stubs, md), grpc.StatusCode.PERMISSION_DENIED, "ON_BEHALF_OF_NOT_ALLOWED")


async def test_acting_for_nobody_is_refused(stubs: Stubs, admin: Account) -> None:
    account = await service_account(stubs, admin)
    other = await service_account(stubs, admin, "other")
    _, secret = await service_account_key(stubs, admin, account.id, *ACTING)
    await stubs.register("pending@example.com")
    async with stubs.app.database.transaction() as db:
        pending = (await db.execute(select(User.id).where(User.email == "pending@example.com"))).scalar_one()
    for target in (str(uuid.uuid4()), "not-a-uuid", other.id, str(pending)):
        details = await expect_error(
            current_user(stubs, key_md(secret, on_behalf_of=target)),
            grpc.StatusCode.PERMISSION_DENIED,
            "ON_BEHALF_OF_USER_INVALID",
        )
        assert "no active user" in details.message


async def test_bad_service_account_requests_store_nothing(stubs: Stubs, admin: Account) -> None:
    app = stubs.app
    await expect_invalid_naming(
        app,
        stubs.service_accounts.CreateServiceAccount(
            api_key_pb2.CreateServiceAccountRequest(service_account=api_key_pb2.ServiceAccount(display_name="")),
            metadata=admin.md,
        ),
        "service_account.display_name",
    )
    await expect_invalid_naming(
        app,
        stubs.service_accounts.CreateServiceAccount(
            api_key_pb2.CreateServiceAccountRequest(service_account=api_key_pb2.ServiceAccount(display_name="n" * 101)),
            metadata=admin.md,
        ),
        "service_account.display_name",
    )
    account = await service_account(stubs, admin)
    # A service account is never an admin.
    await expect_invalid_naming(
        app,
        stubs.service_accounts.CreateServiceAccountKey(
            api_key_pb2.CreateServiceAccountKeyRequest(
                service_account_id=account.id,
                api_key=api_key_pb2.ApiKey(name="x", scopes=[access_pb2.SCOPE_ADMIN]),
            ),
            metadata=admin.md,
        ),
        "api_key.scopes[0]",
    )
    await expect_invalid_naming(
        app,
        stubs.service_accounts.ListServiceAccountKeys(
            api_key_pb2.ListServiceAccountKeysRequest(service_account_id="x"), metadata=admin.md
        ),
        "service_account_id",
    )


async def test_revocation_reaches_another_replica_within_the_cache_time(
    stubs: Stubs, alice: Account, replica: Stubs
) -> None:
    key, secret = await user_key(stubs, alice)
    replica.app.api_keys.clear_cache()
    # The replica checks the key and keeps it for the session-cache time.
    assert (await current_user(replica, key_md(secret))).id == alice.user.id
    await stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=alice.md)
    # This replica forgot it at once.
    await expect_error(current_user(stubs, key_md(secret)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")
    # The other one once its cache time has passed (its cache dropped, as time would).
    replica.app.api_keys.clear_cache()
    await expect_error(current_user(replica, key_md(secret)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")


@pytest.fixture
async def uncached_replica(stubs: Stubs, tmp_root: Path, database_url: str) -> AsyncIterator[Stubs]:
    """A replica that caches no session or key: it sees every revocation at once."""
    async with second_server(tmp_root, database_url, session_cache_seconds=0) as other:
        yield other


async def test_a_replica_without_cache_sees_revocation_at_once(
    stubs: Stubs, alice: Account, uncached_replica: Stubs
) -> None:
    key, secret = await user_key(stubs, alice)
    assert (await current_user(uncached_replica, key_md(secret))).id == alice.user.id
    await stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=alice.md)
    await expect_error(
        current_user(uncached_replica, key_md(secret)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED"
    )


@pytest.fixture
async def limited(stubs: Stubs, tmp_root: Path, database_url: str) -> AsyncIterator[Stubs]:
    """A replica allowing 3 calls per key per minute."""
    async with second_server(tmp_root, database_url, api_key_calls_per_minute=3) as other:
        yield other


async def test_calls_over_the_keys_rate_limit_are_refused(stubs: Stubs, alice: Account, limited: Stubs) -> None:
    _, secret = await user_key(stubs, alice)
    _, other_secret = await user_key(stubs, alice, name="other")
    for _ in range(3):
        await current_user(limited, key_md(secret))
    details = await expect_error(
        current_user(limited, key_md(secret)), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"
    )
    assert details.retry_seconds is not None and 0 < details.retry_seconds <= 60
    # The limit is per key, and sessions are not counted.
    await current_user(limited, key_md(other_secret))
    await current_user(limited, alice.md)


async def key_calls_counted(stubs: Stubs, key_id: str, calls: int) -> None:
    """Wait until PostgreSQL holds calls counted for the key (replicas write their counts in batches)."""
    for _ in range(200):
        rows = await sql(stubs.app, "SELECT count FROM rate_limit_counters WHERE key = :key", key=f"api-key:{key_id}")
        if rows and rows[0][0] >= calls:
            assert rows[0][0] == calls
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"PostgreSQL never counted {calls} calls of the key: {rows}")


async def test_replicas_share_a_keys_rate_limit(
    stubs: Stubs, alice: Account, limited: Stubs, tmp_root: Path, database_url: str
) -> None:
    key, secret = await user_key(stubs, alice)
    for _ in range(3):
        await current_user(limited, key_md(secret))
    # The calls reach PostgreSQL without a write each, and another replica
    # with the same limit refuses the key's next call.
    await key_calls_counted(limited, key.id, 3)
    async with second_server(tmp_root, database_url, api_key_calls_per_minute=3) as other:
        await expect_error(current_user(other, key_md(secret)), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")


async def test_a_stopping_replica_writes_the_calls_it_counted(
    stubs: Stubs, alice: Account, tmp_root: Path, database_url: str
) -> None:
    key, secret = await user_key(stubs, alice)
    async with second_server(tmp_root, database_url, api_key_calls_per_minute=50) as other:
        for _ in range(5):
            await current_user(other, key_md(secret))
    rows = await sql(stubs.app, "SELECT count FROM rate_limit_counters WHERE key = :key", key=f"api-key:{key.id}")
    assert rows == [(5,)]
