"""The Python client with an API key instead of a login, and on behalf of a user."""

from __future__ import annotations

import grpc
import pytest

from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from parley.auth.v1 import auth_pb2
from parley.client import Completed, ParleyClient, ParleyError
from parley.conversation.v1 import conversation_pb2
from parley_server.transport.server import RunningServer
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.api_keys import ALL_USER_SCOPES, service_account, service_account_key, user_key
from tests.helpers.stubs import Stubs


async def test_a_client_with_a_key_calls_as_the_keys_owner(stubs: Stubs, alice: Account, server: RunningServer) -> None:
    _, secret = await user_key(stubs, alice)
    async with ParleyClient(f"127.0.0.1:{server.port}", api_key=secret) as client:
        me = await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
        assert me.user.id == alice.user.id
        created = await client.conversations.CreateConversation(
            conversation_pb2.CreateConversationRequest(agent_id=await agent_id(stubs.app))
        )
        events = [e async for e in client.send_message(created.conversation.id, "hi")]
        assert isinstance(events[-1], Completed)
        assert client.tokens is None


async def test_a_client_acts_on_behalf_of_a_user(stubs: Stubs, alice: Account, server: RunningServer) -> None:
    admin = await stubs.admin_account()
    account = await service_account(stubs, admin)
    _, secret = await service_account_key(stubs, admin, account.id, *ALL_USER_SCOPES, access_pb2.SCOPE_ACT_AS_USER)
    async with ParleyClient(f"127.0.0.1:{server.port}", api_key=secret, on_behalf_of=alice.user.id) as client:
        me = await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
        assert me.user.id == alice.user.id


async def test_a_revoked_key_is_a_parley_error_without_a_refresh(
    stubs: Stubs, alice: Account, server: RunningServer
) -> None:
    key, secret = await user_key(stubs, alice)
    await stubs.api_keys.RevokeApiKey(api_key_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=alice.md)
    async with ParleyClient(f"127.0.0.1:{server.port}", api_key=secret) as client:
        with pytest.raises(ParleyError) as raised:
            await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.reason == "API_KEY_REVOKED"
