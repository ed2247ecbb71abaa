"""The authorization matrix, generated from the proto descriptors.

Every RPC of every Parley service is called as an anonymous caller, as the
owner of the resources the request names, as another user, as an admin, and
as an account whose email is not verified yet. The expected status follows
from the RPC's `(parley.api.v1.access)` option in the protos and from whether
the RPC names a user-owned resource:

- anonymous: UNAUTHENTICATED, unless the RPC is public;
- unverified account: allowed for AUTHENTICATED RPCs, PERMISSION_DENIED for
  USER and ADMIN ones;
- admin-only RPCs: PERMISSION_DENIED for users, allowed for admins;
- RPCs on a user's conversation or message: allowed for the owner, NOT_FOUND
  for anyone else, admins included (they use AdminService);
- other user RPCs: allowed for every signed-in active user;
- public RPCs: not refused to an anonymous caller (the token is ignored).

"Allowed" means the call got past authentication and authorization: its
status is none of UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, UNIMPLEMENTED.
An RPC added to a proto without an entry in REQUESTS fails this test.

The key column calls every RPC with an API key of each scope: the owner's
keys with only SCOPE_READ, SCOPE_WRITE or SCOPE_CHAT, an admin's key with
SCOPE_ADMIN and a service account's with SCOPE_ACT_AS_USER. Exactly the key
whose scope is the RPC's `(parley.api.v1.scope)` gets through (as its owner
would); every other key, and every key on a sessions-only RPC, is
PERMISSION_DENIED.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message as ProtoMessage

from parley.admin.v1 import admin_pb2
from parley.agent.v1 import agent_pb2
from parley.agent_access.v1 import agent_access_pb2
from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from parley.auth.v1 import auth_pb2
from parley.chat.v1 import chat_pb2
from parley.client import rpcs
from parley.conversation.v1 import conversation_pb2
from parley.feedback.v1 import feedback_pb2
from parley.portability.v1 import portability_pb2
from tests.helpers.accounts import PASSWORD, Account
from tests.helpers.agents import agent_id
from tests.helpers.api_keys import key_md, service_account, service_account_key, user_key
from tests.helpers.chat import collect
from tests.helpers.stubs import Stubs

DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}


@dataclass
class World:
    owner: Account
    other: Account
    admin: Account
    agent_id: str
    conversation_id: str
    message_id: str
    api_key_id: str
    service_account_id: str
    service_account_key_id: str


# For each RPC: (builds a request naming the owner's resources, names an owned resource?)
Builder = Callable[[World], ProtoMessage]
REQUESTS: dict[str, tuple[Builder, bool]] = {
    # parley.auth.v1.AuthService
    "Register": (lambda w: auth_pb2.RegisterRequest(email="new@example.com", password=PASSWORD), False),
    "Login": (lambda w: auth_pb2.LoginRequest(email="owner@example.com", password=PASSWORD), False),
    "RefreshToken": (lambda w: auth_pb2.RefreshTokenRequest(refresh_token=w.owner.tokens.refresh_token), False),
    "Logout": (lambda w: auth_pb2.LogoutRequest(), False),
    "GetCurrentUser": (lambda w: auth_pb2.GetCurrentUserRequest(), False),
    "UpdateProfile": (
        lambda w: auth_pb2.UpdateProfileRequest(
            user=auth_pb2.User(display_name="Name"), update_mask=field_mask_pb2.FieldMask(paths=["display_name"])
        ),
        False,
    ),
    "ChangePassword": (
        lambda w: auth_pb2.ChangePasswordRequest(old_password=PASSWORD, new_password=PASSWORD + "!"),
        False,
    ),
    "RequestPasswordReset": (lambda w: auth_pb2.RequestPasswordResetRequest(email="owner@example.com"), False),
    "ResetPassword": (lambda w: auth_pb2.ResetPasswordRequest(token="x" * 20, new_password=PASSWORD), False),
    "VerifyEmail": (lambda w: auth_pb2.VerifyEmailRequest(token="x" * 20), False),
    "ResendVerificationEmail": (lambda w: auth_pb2.ResendVerificationEmailRequest(), False),
    "DeleteAccount": (lambda w: auth_pb2.DeleteAccountRequest(password=PASSWORD), False),
    "JoinWaitlist": (lambda w: auth_pb2.JoinWaitlistRequest(email="wait@example.com"), False),
    # parley.conversation.v1.ConversationService
    "CreateConversation": (lambda w: conversation_pb2.CreateConversationRequest(agent_id=w.agent_id), False),
    "GetConversation": (lambda w: conversation_pb2.GetConversationRequest(conversation_id=w.conversation_id), True),
    "ListConversations": (lambda w: conversation_pb2.ListConversationsRequest(), False),
    "GetOrCreateFreshConversation": (
        lambda w: conversation_pb2.GetOrCreateFreshConversationRequest(agent_id=w.agent_id),
        False,
    ),
    "UpdateConversation": (
        lambda w: conversation_pb2.UpdateConversationRequest(
            conversation=conversation_pb2.Conversation(id=w.conversation_id, title="T"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        True,
    ),
    "DeleteConversation": (
        lambda w: conversation_pb2.DeleteConversationRequest(conversation_id=w.conversation_id),
        True,
    ),
    "CreateMessage": (
        lambda w: conversation_pb2.CreateMessageRequest(
            conversation_id=w.conversation_id, role=conversation_pb2.MESSAGE_ROLE_USER, content="hi"
        ),
        True,
    ),
    "ListMessages": (lambda w: conversation_pb2.ListMessagesRequest(conversation_id=w.conversation_id), True),
    "GetMessagesForAgent": (
        lambda w: conversation_pb2.GetMessagesForAgentRequest(conversation_id=w.conversation_id),
        True,
    ),
    "ClearMessages": (lambda w: conversation_pb2.ClearMessagesRequest(conversation_id=w.conversation_id), True),
    "SwitchBranch": (lambda w: conversation_pb2.SwitchBranchRequest(message_id=w.message_id), True),
    "GenerateTitle": (lambda w: conversation_pb2.GenerateTitleRequest(conversation_id=w.conversation_id), True),
    "CleanupEmptyConversations": (lambda w: conversation_pb2.CleanupEmptyConversationsRequest(), False),
    # parley.agent_access.v1.AgentAccessService
    "CheckAgentAccess": (lambda w: agent_access_pb2.CheckAgentAccessRequest(agent_id=w.agent_id), False),
    "ListAccessibleAgents": (lambda w: agent_access_pb2.ListAccessibleAgentsRequest(), False),
    "GetUsage": (lambda w: agent_access_pb2.GetUsageRequest(), False),
    "GrantAgentAccess": (
        lambda w: agent_access_pb2.GrantAgentAccessRequest(user_id=w.owner.user.id, agent_id=w.agent_id),
        False,
    ),
    "RevokeAgentAccess": (
        lambda w: agent_access_pb2.RevokeAgentAccessRequest(user_id=w.owner.user.id, agent_id=w.agent_id),
        False,
    ),
    "ListAgentGrants": (lambda w: agent_access_pb2.ListAgentGrantsRequest(user_id=w.owner.user.id), False),
    # parley.agent.v1.AgentService
    "ListAgents": (lambda w: agent_pb2.ListAgentsRequest(), False),
    "GetAgent": (lambda w: agent_pb2.GetAgentRequest(id=w.agent_id), False),
    "CreateAgent": (
        lambda w: agent_pb2.CreateAgentRequest(
            agent=agent_pb2.Agent(
                slug="matrix-agent",
                name="Matrix",
                visibility=agent_pb2.AGENT_VISIBILITY_PUBLIC,
                provider=agent_pb2.AGENT_PROVIDER_ECHO,
                max_output_tokens=100,
            )
        ),
        False,
    ),
    "UpdateAgent": (
        lambda w: agent_pb2.UpdateAgentRequest(
            agent=agent_pb2.Agent(id=w.agent_id, name="Renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        False,
    ),
    "DeleteAgent": (lambda w: agent_pb2.DeleteAgentRequest(id=w.agent_id), False),
    # parley.admin.v1.AdminService
    "ListUsers": (lambda w: admin_pb2.ListUsersRequest(), False),
    "GetUser": (lambda w: admin_pb2.GetUserRequest(user_id=w.owner.user.id), False),
    "UpdateUser": (
        lambda w: admin_pb2.UpdateUserRequest(
            user=auth_pb2.User(id=w.owner.user.id, premium=True),
            update_mask=field_mask_pb2.FieldMask(paths=["premium"]),
        ),
        False,
    ),
    "DeleteUser": (lambda w: admin_pb2.DeleteUserRequest(user_id=w.owner.user.id), False),
    "ListWaitlist": (lambda w: admin_pb2.ListWaitlistRequest(), False),
    "ApproveWaitlistEntries": (lambda w: admin_pb2.ApproveWaitlistEntriesRequest(), False),
    "GetStats": (lambda w: admin_pb2.GetStatsRequest(), False),
    "GetSystemHealth": (lambda w: admin_pb2.GetSystemHealthRequest(), False),
    # parley.chat.v1.ChatService
    "SendMessage": (
        lambda w: chat_pb2.SendMessageRequest(conversation_id=w.conversation_id, content="hello"),
        True,
    ),
    "RegenerateMessage": (lambda w: chat_pb2.RegenerateMessageRequest(message_id=w.message_id), True),
    # The world's message is an answer: the owner is told it is not a user message, others NOT_FOUND.
    "EditMessage": (lambda w: chat_pb2.EditMessageRequest(message_id=w.message_id, content="again"), True),
    "ResumeStream": (lambda w: chat_pb2.ResumeStreamRequest(message_id=w.message_id), True),
    "CancelGeneration": (lambda w: chat_pb2.CancelGenerationRequest(message_id=w.message_id), True),
    "WatchConversation": (
        lambda w: chat_pb2.WatchConversationRequest(conversation_id=w.conversation_id),
        True,
    ),
    # parley.feedback.v1.FeedbackService
    "SetMessageFeedback": (
        lambda w: feedback_pb2.SetMessageFeedbackRequest(
            feedback=feedback_pb2.MessageFeedback(message_id=w.message_id, rating=feedback_pb2.RATING_THUMBS_UP)
        ),
        True,
    ),
    "DeleteMessageFeedback": (lambda w: feedback_pb2.DeleteMessageFeedbackRequest(message_id=w.message_id), True),
    "ListConversationFeedback": (
        lambda w: feedback_pb2.ListConversationFeedbackRequest(conversation_id=w.conversation_id),
        True,
    ),
    "ListFeedback": (lambda w: feedback_pb2.ListFeedbackRequest(), False),
    # parley.portability.v1.PortabilityService
    "ExportConversations": (lambda w: portability_pb2.ExportConversationsRequest(), False),
    "ExportUserConversations": (
        lambda w: portability_pb2.ExportUserConversationsRequest(user_id=w.owner.user.id),
        False,
    ),
    "ImportConversations": (lambda w: portability_pb2.ImportConversationsRequest(data=b"{}\n"), False),
    "DeleteAllConversations": (lambda w: portability_pb2.DeleteAllConversationsRequest(), False),
    "ExportAccount": (lambda w: portability_pb2.ExportAccountRequest(), False),
    # parley.api_key.v1.ApiKeyService
    "CreateApiKey": (
        lambda w: api_key_pb2.CreateApiKeyRequest(
            api_key=api_key_pb2.ApiKey(name="matrix", scopes=[access_pb2.SCOPE_READ])
        ),
        False,
    ),
    "ListApiKeys": (lambda w: api_key_pb2.ListApiKeysRequest(), False),
    "RevokeApiKey": (lambda w: api_key_pb2.RevokeApiKeyRequest(api_key_id=w.api_key_id), True),
    # parley.api_key.v1.ServiceAccountService
    "CreateServiceAccount": (
        lambda w: api_key_pb2.CreateServiceAccountRequest(
            service_account=api_key_pb2.ServiceAccount(display_name="matrix")
        ),
        False,
    ),
    "ListServiceAccounts": (lambda w: api_key_pb2.ListServiceAccountsRequest(), False),
    "DeleteServiceAccount": (
        lambda w: api_key_pb2.DeleteServiceAccountRequest(service_account_id=w.service_account_id),
        False,
    ),
    "CreateServiceAccountKey": (
        lambda w: api_key_pb2.CreateServiceAccountKeyRequest(
            service_account_id=w.service_account_id,
            api_key=api_key_pb2.ApiKey(name="matrix", scopes=[access_pb2.SCOPE_READ]),
        ),
        False,
    ),
    "ListServiceAccountKeys": (
        lambda w: api_key_pb2.ListServiceAccountKeysRequest(service_account_id=w.service_account_id),
        False,
    ),
    "RevokeServiceAccountKey": (
        lambda w: api_key_pb2.RevokeServiceAccountKeyRequest(
            service_account_id=w.service_account_id, api_key_id=w.service_account_key_id
        ),
        False,
    ),
}
# Admin's global CleanupEmptyConversations shares its name with the user RPC.
ADMIN_CLEANUP = "/parley.admin.v1.AdminService/CleanupEmptyConversations"


def all_methods() -> list[tuple[str, Any]]:
    return [(rpcs.full_name(method), method) for method in rpcs.methods()]


def request_for(full_name: str, method: Any, world: World) -> tuple[ProtoMessage, bool]:
    if full_name == ADMIN_CLEANUP:
        return admin_pb2.CleanupEmptyConversationsRequest(), False
    build, owned = REQUESTS[method.name]
    request = build(world)
    assert request.DESCRIPTOR.full_name == method.input_type.full_name, full_name
    return request, owned


async def call(
    channel: grpc.aio.Channel, method: Any, full_name: str, request: ProtoMessage, md: Any
) -> grpc.StatusCode:
    """The status of one call; an open stream that is still running after 1 s counts as allowed."""
    response_type = method.output_type._concrete_class
    try:
        if method.client_streaming:  # the request as a stream of one message
            upload: grpc.aio.StreamUnaryMultiCallable[bytes, ProtoMessage] = channel.stream_unary(
                full_name, response_deserializer=response_type.FromString
            )
            await upload(iter([request.SerializeToString()]), metadata=md, timeout=10)
        elif method.server_streaming:
            stream: grpc.aio.UnaryStreamMultiCallable[bytes, ProtoMessage] = channel.unary_stream(
                full_name, response_deserializer=response_type.FromString
            )
            await collect(stream(request.SerializeToString(), metadata=md, timeout=1))
        else:
            unary: grpc.aio.UnaryUnaryMultiCallable[bytes, ProtoMessage] = channel.unary_unary(
                full_name, response_deserializer=response_type.FromString
            )
            await unary(request.SerializeToString(), metadata=md, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_every_rpc_has_a_matrix_entry() -> None:
    missing = [name for name, method in all_methods() if name != ADMIN_CLEANUP and method.name not in REQUESTS]
    assert not missing, f"add these RPCs to the authorization matrix: {missing}"


async def make_world(stubs: Stubs) -> World:
    """The accounts and resources the requests name."""
    owner = await stubs.active_account("owner@example.com")
    other = await stubs.active_account("other@example.com")
    admin = await stubs.admin_account("admin@example.com")
    aid = await agent_id(stubs.app)
    created = await stubs.conversation.CreateConversation(
        conversation_pb2.CreateConversationRequest(agent_id=aid), metadata=owner.md
    )
    cid = created.conversation.id
    sent = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="hi"), metadata=owner.md)
    )
    key, _ = await user_key(stubs, owner, access_pb2.SCOPE_READ, name="owned")
    account = await service_account(stubs, admin)
    account_key, _ = await service_account_key(stubs, admin, account.id)
    return World(
        owner, other, admin, aid, cid, sent[0].accepted.assistant_message_id, key.id, account.id, account_key.id
    )


@pytest.mark.parametrize("full_name", [name for name, _ in all_methods()])
async def test_matrix(full_name: str, stubs: Stubs, channel: grpc.aio.Channel) -> None:
    method = dict(all_methods())[full_name]
    access = rpcs.access(method)
    assert access != access_pb2.ACCESS_UNSPECIFIED, f"{full_name} has no (parley.api.v1.access) option"
    world = await make_world(stubs)
    owner, other, admin = world.owner, world.other, world.admin
    await stubs.register("unverified@example.com")
    unverified = await stubs.login("unverified@example.com")
    request, owned = request_for(full_name, method, world)

    anonymous = await call(channel, method, full_name, request, None)
    if access == access_pb2.ACCESS_PUBLIC:
        assert anonymous not in DENIED, f"{full_name} is public but said {anonymous}"
    else:
        assert anonymous == grpc.StatusCode.UNAUTHENTICATED, f"{full_name} as anonymous: {anonymous}"

    results = {
        role: await call(channel, method, full_name, request, account.md)
        for role, account in (("other", other), ("owner", owner), ("admin", admin), ("unverified", unverified))
    }
    for role, code in results.items():
        assert code != grpc.StatusCode.UNIMPLEMENTED, f"{full_name} is not implemented"
        if access == access_pb2.ACCESS_PUBLIC:
            continue  # public RPCs ignore the caller; the anonymous call above is the check
        if role == "unverified":
            expected_denied = access != access_pb2.ACCESS_AUTHENTICATED
            assert (code == grpc.StatusCode.PERMISSION_DENIED) == expected_denied, f"{full_name} as {role}: {code}"
        elif access == access_pb2.ACCESS_ADMIN:
            expected_denied = role != "admin"
            assert (code == grpc.StatusCode.PERMISSION_DENIED) == expected_denied, f"{full_name} as {role}: {code}"
        elif owned and role != "owner":
            assert code == grpc.StatusCode.NOT_FOUND, f"{full_name} as {role} on the owner's data: {code}"
        else:
            assert code not in DENIED, f"{full_name} as {role}: {code}"


def test_ids_are_checked_before_ownership() -> None:
    # Guard against a builder silently naming a random resource: owned builders must use World ids.
    world = World(
        *(None,) * 3,  # type: ignore[arg-type]
        agent_id="a",
        conversation_id=str(uuid.uuid4()),
        message_id=str(uuid.uuid4()),
        api_key_id=str(uuid.uuid4()),
        service_account_id="s",
        service_account_key_id="k",
    )
    for name, (build, owned) in REQUESTS.items():
        if owned:
            text = str(build(world))
            assert world.conversation_id in text or world.message_id in text or world.api_key_id in text, name


KEY_SCOPES = (access_pb2.SCOPE_READ, access_pb2.SCOPE_WRITE, access_pb2.SCOPE_CHAT)


@pytest.mark.parametrize(
    "full_name", [name for name, method in all_methods() if rpcs.access(method) != access_pb2.ACCESS_PUBLIC]
)
async def test_key_matrix(full_name: str, stubs: Stubs, channel: grpc.aio.Channel) -> None:
    method = dict(all_methods())[full_name]
    needed = rpcs.scope(method)
    world = await make_world(stubs)
    request, _ = request_for(full_name, method, world)
    keys = {scope: (await user_key(stubs, world.owner, scope))[1] for scope in KEY_SCOPES}
    keys[access_pb2.SCOPE_ADMIN] = (await user_key(stubs, world.admin, access_pb2.SCOPE_ADMIN))[1]
    account = await service_account(stubs, world.admin, "acting")
    keys[access_pb2.SCOPE_ACT_AS_USER] = (
        await service_account_key(stubs, world.admin, account.id, access_pb2.SCOPE_ACT_AS_USER)
    )[1]
    # The refused keys first: the allowed call may change what the request names.
    order = sorted(keys, key=lambda scope: scope == needed)
    for scope in order:
        code = await call(channel, method, full_name, request, key_md(keys[scope]))
        label = f"{full_name} by a {access_pb2.Scope.Name(scope)} key (the RPC needs {access_pb2.Scope.Name(needed)})"
        if scope == needed == access_pb2.SCOPE_ADMIN:
            # As for an admin's session: the request may name nothing there to act on (NOT_FOUND).
            assert code not in {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}, f"{label}: {code}"
        elif scope == needed:
            assert code not in DENIED, f"{label}: {code}"
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, f"{label}: {code}"
