"""parley.client.ParleyClient against the real in-process server (and, for the
retry policy, against a small fault-injecting gRPC server)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import descriptor_pool

from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.client import (
    Accepted,
    Cancelled,
    ChatEvent,
    Completed,
    ConversationUpdated,
    Failed,
    MessageCompleted,
    MessageCreated,
    MessageDelta,
    ParleyClient,
    ParleyError,
    TextDelta,
    Tokens,
    Usage,
    service_config,
)
from parley.client.channel import IDEMPOTENT_METHODS, PUBLIC_METHODS, REQUEST_ID_METHODS
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from parley_server.db.models import MessageState
from parley_server.transport.interceptors.access_policy import POLICY, Access
from parley_server.transport.server import RunningServer
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.chat import stored
from tests.helpers.in_process import TEST_JWT_SECRET
from tests.helpers.repo import REPO_ROOT
from tests.helpers.stubs import Stubs

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

WORDS = " ".join(f"word{i}" for i in range(60))
EXPECTED = "Echo: " + WORDS
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ParleyClient]:
    async with ParleyClient(f"127.0.0.1:{server.port}") as c:
        yield c


async def client_conversation(client: ParleyClient, stubs: Stubs) -> str:
    """A conversation created through the client under test (logged in); its id."""
    response: conversation_pb2.CreateConversationResponse = await client.conversations.CreateConversation(
        conversation_pb2.CreateConversationRequest(agent_id=await agent_id(stubs.app))
    )
    return response.conversation.id


def expired_access_token(account: Account) -> str:
    """A correctly signed access token of the account's real session, expired a minute ago."""
    claims = jwt.decode(account.tokens.access_token, options={"verify_signature": False})
    now = int(time.time())
    return jwt.encode({**claims, "iat": now - 3600, "exp": now - 60}, TEST_JWT_SECRET, algorithm="HS256")


def text_of_client_events(events: list[ChatEvent]) -> str:
    """Concatenate the deltas, checking offsets are contiguous (no gap, no repeat)."""
    text = ""
    for event in events:
        if isinstance(event, TextDelta):
            assert event.offset == len(text), (event.offset, len(text))
            text += event.text
    return text


def tokens_of(client: ParleyClient) -> Tokens | None:
    """client.tokens, read through a call: mypy keeps what an `assert client.tokens
    is None` narrowed the property to across the calls that set it."""
    return client.tokens


# -- session ------------------------------------------------------------------


async def test_login_then_calls_carry_the_token(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    assert tokens_of(client) is None
    user = await client.login("alice@example.com", alice.password)
    assert user.email == "alice@example.com"
    assert client.tokens is not None and client.tokens.access_token and client.tokens.refresh_token
    expires = client.tokens.access_token_expire_time
    assert expires is not None and expires > datetime.now(UTC)
    me = await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
    assert me.user.id == user.id
    cid = await client_conversation(client, stubs)
    listed = await client.conversations.ListConversations(conversation_pb2.ListConversationsRequest())
    assert [c.id for c in listed.conversations] == [cid]


async def test_wrong_password_is_a_parley_error_and_sets_no_tokens(alice: Account, client: ParleyClient) -> None:
    with pytest.raises(ParleyError) as caught:
        await client.login("alice@example.com", "not the password at all")
    error = caught.value
    assert isinstance(error, grpc.RpcError)
    assert error.code == UNAUTHENTICATED and error.reason == "INVALID_CREDENTIALS" and error.domain == "parley"
    assert client.tokens is None


async def test_calls_without_login_are_unauthenticated(client: ParleyClient) -> None:
    with pytest.raises(ParleyError) as caught:
        await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
    assert caught.value.code == UNAUTHENTICATED and caught.value.reason


async def test_expired_access_token_is_refreshed_and_the_call_retried(alice: Account, server: RunningServer) -> None:
    changes: list[Tokens | None] = []
    async with ParleyClient(f"127.0.0.1:{server.port}", on_tokens=changes.append) as client:
        expired = expired_access_token(alice)
        client.use_tokens(expired, alice.tokens.refresh_token)
        me = await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
        assert me.user.id == alice.user.id
        tokens = client.tokens
        assert tokens is not None
        assert tokens.access_token != expired and tokens.refresh_token != alice.tokens.refresh_token
        assert changes == [Tokens(expired, alice.tokens.refresh_token), tokens]
        # The new pair keeps working without another refresh.
        await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
        assert client.tokens == tokens


async def test_concurrent_calls_share_one_refresh(stubs: Stubs, alice: Account, server: RunningServer) -> None:
    changes: list[Tokens | None] = []
    async with ParleyClient(f"127.0.0.1:{server.port}", on_tokens=changes.append) as client:
        client.use_tokens(expired_access_token(alice), alice.tokens.refresh_token)
        # Two refreshes with the same refresh token would be a reuse, which
        # revokes the session: every call succeeding proves there was one.
        results = await asyncio.gather(
            *(client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest()) for _ in range(8)),
            *(client.conversations.ListConversations(conversation_pb2.ListConversationsRequest()) for _ in range(4)),
        )
        assert len(results) == 12
        assert len(changes) == 2  # use_tokens, then the one refresh


async def test_stream_with_expired_token_refreshes_before_streaming(
    stubs: Stubs, alice: Account, server: RunningServer
) -> None:
    async with ParleyClient(f"127.0.0.1:{server.port}") as client:
        client.use_tokens(alice.tokens.access_token, alice.tokens.refresh_token)
        cid = await client_conversation(client, stubs)
        client.use_tokens(expired_access_token(alice), alice.tokens.refresh_token)
        events = [e async for e in client.send_message(cid, "hello there")]
        assert text_of_client_events(events) == "Echo: hello there"
        assert client.tokens is not None and client.tokens.refresh_token != alice.tokens.refresh_token


async def test_refused_refresh_surfaces_unauthenticated_and_forgets_tokens(
    stubs: Stubs, alice: Account, server: RunningServer
) -> None:
    # Log the session out: its refresh token (and access tokens) stop working.
    await stubs.auth.Logout(auth_pb2.LogoutRequest(refresh_token=alice.tokens.refresh_token), metadata=alice.md)
    changes: list[Tokens | None] = []
    async with ParleyClient(f"127.0.0.1:{server.port}", on_tokens=changes.append) as client:
        client.use_tokens(expired_access_token(alice), alice.tokens.refresh_token)
        with pytest.raises(ParleyError) as caught:
            await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
        assert caught.value.code == UNAUTHENTICATED and caught.value.reason
        assert client.tokens is None and changes[-1] is None
        # Streams too.
        client.use_tokens(expired_access_token(alice), alice.tokens.refresh_token)
        with pytest.raises(ParleyError) as caught:
            [e async for e in client.send_message(str(uuid.uuid4()), "hi")]
        assert caught.value.code == UNAUTHENTICATED


async def test_logout_revokes_the_session_and_forgets_tokens(alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    tokens = client.tokens
    assert tokens is not None
    await client.logout()
    assert client.tokens is None
    client.use_tokens(tokens.access_token, tokens.refresh_token)
    with pytest.raises(ParleyError) as caught:
        await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
    assert caught.value.code == UNAUTHENTICATED
    await client.logout()  # already logged out: harmless


async def test_register_creates_a_pending_account(client: ParleyClient) -> None:
    user = await client.register("bob@example.com", "correct horse battery staple", display_name="Bob")
    assert user.email == "bob@example.com" and user.display_name == "Bob"
    assert user.state == auth_pb2.USER_STATE_PENDING_VERIFICATION
    with pytest.raises(ParleyError) as caught:
        await client.register("bob@example.com", "correct horse battery staple")
    assert caught.value.code == grpc.StatusCode.ALREADY_EXISTS


def test_tokens_round_trip_through_json() -> None:
    tokens = Tokens("a", "r", datetime.now(UTC), None)
    assert Tokens.from_dict(json.loads(json.dumps(tokens.to_dict()))) == tokens


# -- errors -------------------------------------------------------------------


async def test_errors_carry_reason_and_field_violations(alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    with pytest.raises(ParleyError) as caught:
        await client.conversations.CreateConversation(conversation_pb2.CreateConversationRequest(agent_id="nope"))
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.reason and error.domain == "parley"
    assert "agent_id" in error.field_violations
    assert error.reason in str(error) and "agent_id" in str(error)
    with pytest.raises(ParleyError) as caught:
        await client.conversations.GetConversation(
            conversation_pb2.GetConversationRequest(conversation_id=str(uuid.uuid4()))
        )
    assert caught.value.code == grpc.StatusCode.NOT_FOUND and caught.value.reason


async def test_rate_limit_error_has_retry_after(alice: Account, client: ParleyClient) -> None:
    for _ in range(10):
        try:
            await client.login("alice@example.com", "wrong password, again")
        except ParleyError as error:
            if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert error.retry_after is not None and error.retry_after > 0
                return
            assert error.code == UNAUTHENTICATED
    raise AssertionError("repeated failed logins were never rate limited")


# -- chat ---------------------------------------------------------------------


async def test_send_message_yields_the_exact_answer(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    cid = await client_conversation(client, stubs)
    events = [e async for e in client.send_message(cid, WORDS)]
    assert isinstance(events[0], Accepted) and events[0].user_message.content == WORDS
    assert isinstance(events[-2], Usage) and events[-2].completion_tokens == 61
    assert isinstance(events[-1], Completed) and events[-1].message.content == EXPECTED
    assert events[-1].message.id == events[0].assistant_message_id
    assert sum(isinstance(e, TextDelta) for e in events) > 10
    assert text_of_client_events(events) == EXPECTED


async def test_send_message_reports_failure(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    cid = await client_conversation(client, stubs)
    events = [e async for e in client.send_message(cid, "/fail right now please")]
    assert isinstance(events[-1], Failed) and events[-1].reason == "echo provider asked to fail"
    assert events[-1].message.content == text_of_client_events(events)


async def test_retried_request_id_reattaches(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    cid = await client_conversation(client, stubs)
    first = [e async for e in client.send_message(cid, "once only", request_id="req-42")]
    again = [e async for e in client.send_message(cid, "once only", request_id="req-42")]
    assert isinstance(first[0], Accepted) and isinstance(again[0], Accepted)
    assert again[0].assistant_message_id == first[0].assistant_message_id
    assert text_of_client_events(again) == text_of_client_events(first) == "Echo: once only"
    listed = await client.conversations.ListMessages(conversation_pb2.ListMessagesRequest(conversation_id=cid))
    assert len(listed.messages) == 2


async def test_cancel_stops_the_generation(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    cid = await client_conversation(client, stubs)
    events: list[ChatEvent] = []
    cancelled = None
    async for event in client.send_message(cid, WORDS):
        events.append(event)
        if sum(isinstance(e, TextDelta) for e in events) == 3:
            accepted = events[0]
            assert isinstance(accepted, Accepted)
            cancelled = await client.cancel(accepted.assistant_message_id)
    assert cancelled is not None and cancelled.state == conversation_pb2.MESSAGE_STATE_CANCELLED
    assert isinstance(events[-1], Cancelled)
    assert text_of_client_events(events) == events[-1].message.content == cancelled.content
    assert 0 < len(cancelled.content) < len(EXPECTED)
    assert (await stored(stubs, cancelled.id)).state is MessageState.CANCELLED


async def test_regenerate_edit_and_switch_branch(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    cid = await client_conversation(client, stubs)
    sent = [e async for e in client.send_message(cid, "first try")]
    assert isinstance(sent[0], Accepted)
    again = [e async for e in client.regenerate(sent[0].assistant_message_id)]
    assert isinstance(again[0], Accepted) and again[0].user_message.id == sent[0].user_message.id
    assert isinstance(again[-1], Completed) and again[-1].message.content == "Echo: first try"
    assert again[-1].message.parent_id == sent[0].user_message.id
    edited = [e async for e in client.edit_message(sent[0].user_message.id, "second try")]
    assert isinstance(edited[0], Accepted) and edited[0].user_message.content == "second try"
    assert text_of_client_events(edited) == "Echo: second try"
    conversation = await client.switch_branch(sent[0].user_message.id)
    assert conversation.active_message_id == again[0].assistant_message_id
    listed = await client.conversations.ListMessages(conversation_pb2.ListMessagesRequest(conversation_id=cid))
    assert [(m.content, m.sibling_count, m.sibling_index) for m in listed.messages] == [
        ("first try", 2, 0),
        ("Echo: first try", 2, 1),
    ]


async def test_resume_replays_from_an_offset(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    cid = await client_conversation(client, stubs)
    events = [e async for e in client.send_message(cid, WORDS)]
    assert isinstance(events[0], Accepted)
    rest = [e async for e in client.resume(events[0].assistant_message_id, 10)]
    deltas = [e for e in rest if isinstance(e, TextDelta)]
    assert deltas[0].offset == 10 and EXPECTED[:10] + "".join(d.text for d in deltas) == EXPECTED
    assert isinstance(rest[-1], Completed)


async def test_watch_sees_the_exchange(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    await client.login("alice@example.com", alice.password)
    cid = await client_conversation(client, stubs)
    seen: list[Any] = []
    subscribed = asyncio.Event()

    async def watch() -> None:
        async for event in client.watch(cid):
            seen.append(event)
            subscribed.set()  # the first event is the conversation as it is now
            if isinstance(event, MessageCompleted):
                return

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(subscribed.wait(), 10)
    [e async for e in client.send_message(cid, WORDS)]
    await asyncio.wait_for(watcher, 10)
    assert isinstance(seen[0], ConversationUpdated) and seen[0].conversation.id == cid
    assert [type(e) for e in seen[1:3]] == [MessageCreated, MessageCreated]
    assert "".join(e.text for e in seen if isinstance(e, MessageDelta)) == EXPECTED
    assert seen[-1].message.content == EXPECTED


# -- reconnects and retries ---------------------------------------------------


class TcpProxy:
    """A TCP relay in front of the server, whose connections can be cut."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections = 0
        self.refuse = 0  # close the next N accepted connections at once
        self._transports: list[asyncio.WriteTransport] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refuse > 0:
            self.refuse -= 1
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._transports += [writer.transport, up_writer.transport]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        """Abort every open connection (both sides), as a network failure would."""
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def proxy(server: RunningServer) -> AsyncIterator[TcpProxy]:
    relay = await TcpProxy(server.port).start()
    yield relay
    await relay.close()


async def test_dropped_connection_mid_answer_is_resumed_transparently(
    stubs: Stubs, alice: Account, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "parley.client")
    async with ParleyClient(f"127.0.0.1:{proxy.port}") as client:
        await client.login("alice@example.com", alice.password)
        cid = await client_conversation(client, stubs)
        events: list[ChatEvent] = []
        async for event in client.send_message(cid, WORDS):
            events.append(event)
            if sum(isinstance(e, TextDelta) for e in events) in (5, 20):
                proxy.cut()
    assert proxy.connections >= 3
    assert len([r for r in caplog.records if "re-attaching to message" in r.getMessage()]) >= 2
    assert sum(isinstance(e, Accepted) for e in events) == 1
    assert sum(isinstance(e, Usage) for e in events) == 1
    assert isinstance(events[-1], Completed)
    assert text_of_client_events(events) == EXPECTED == events[-1].message.content


async def test_a_regeneration_cut_mid_answer_is_resumed_transparently(
    stubs: Stubs, alice: Account, proxy: TcpProxy
) -> None:
    async with ParleyClient(f"127.0.0.1:{proxy.port}") as client:
        await client.login("alice@example.com", alice.password)
        cid = await client_conversation(client, stubs)
        sent = [e async for e in client.send_message(cid, WORDS)]
        assert isinstance(sent[0], Accepted)
        events: list[ChatEvent] = []
        async for event in client.regenerate(sent[0].assistant_message_id):
            events.append(event)
            if sum(isinstance(e, TextDelta) for e in events) == 5:
                proxy.cut()
        assert sum(isinstance(e, Accepted) for e in events) == 1
        assert isinstance(events[-1], Completed)
        assert text_of_client_events(events) == EXPECTED == events[-1].message.content
        listed = await client.conversations.ListMessages(
            conversation_pb2.ListMessagesRequest(conversation_id=cid, all_branches=True)
        )
        assert len(listed.messages) == 3


async def test_send_message_retries_with_its_request_id_when_the_server_is_unreachable(
    stubs: Stubs, alice: Account, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "parley.client")
    async with ParleyClient(f"127.0.0.1:{proxy.port}") as client:
        await client.login("alice@example.com", alice.password)
        cid = await client_conversation(client, stubs)
        before = proxy.connections
        proxy.refuse = 2
        proxy.cut()  # the next connections are refused: SendMessage fails UNAVAILABLE twice
        events = [e async for e in client.send_message(cid, "are you there")]
        assert proxy.connections - before >= 3
        assert any("re-attaching to the request" in r.getMessage() for r in caplog.records)
        assert text_of_client_events(events) == "Echo: are you there"
        listed = await client.conversations.ListMessages(conversation_pb2.ListMessagesRequest(conversation_id=cid))
        assert len(listed.messages) == 2


class FlakyConversations(conversation_pb2_grpc.ConversationServiceServicer):
    """Answers UNAVAILABLE for the first `failures` attempts of each method."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[str, list[Any]] = {}

    async def _attempt(self, name: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.attempts.setdefault(name, []).append(request)
        if len(self.attempts[name]) <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

    async def GetConversation(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await self._attempt("GetConversation", request, context)
        return conversation_pb2.GetConversationResponse(
            conversation=conversation_pb2.Conversation(id=request.conversation_id)
        )

    async def CreateConversation(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await self._attempt("CreateConversation", request, context)
        return conversation_pb2.CreateConversationResponse(conversation=conversation_pb2.Conversation(id="c1"))

    async def DeleteConversation(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await self._attempt("DeleteConversation", request, context)
        return conversation_pb2.DeleteConversationResponse()


class DownAuth(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self) -> None:
        self.logins = 0

    async def Login(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.logins += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")


async def test_unavailable_is_retried_for_idempotent_methods_only() -> None:
    conversations, auth = FlakyConversations(failures=2), DownAuth()
    fake = grpc.aio.server()
    conversation_pb2_grpc.add_ConversationServiceServicer_to_server(conversations, fake)
    auth_pb2_grpc.add_AuthServiceServicer_to_server(auth, fake)
    port = fake.add_insecure_port("127.0.0.1:0")
    await fake.start()
    try:
        async with ParleyClient(f"127.0.0.1:{port}") as client:
            client.use_tokens("access", "refresh")
            request = conversation_pb2.GetConversationRequest(conversation_id="x")
            got = await client.conversations.GetConversation(request)
            assert got.conversation.id == "x" and len(conversations.attempts["GetConversation"]) == 3
            # A create without request_id gets one, the same on every attempt.
            await client.conversations.CreateConversation(conversation_pb2.CreateConversationRequest(agent_id="a"))
            ids = {r.request_id for r in conversations.attempts["CreateConversation"]}
            assert len(conversations.attempts["CreateConversation"]) == 3 and len(ids) == 1 and ids != {""}
            # Not idempotent: no retry.
            with pytest.raises(ParleyError) as caught:
                await client.conversations.DeleteConversation(conversation_pb2.DeleteConversationRequest())
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
            assert len(conversations.attempts["DeleteConversation"]) == 1
            with pytest.raises(ParleyError):
                await client.login("a@example.com", "password")
            assert auth.logins == 1
    finally:
        await fake.stop(0)


def test_retry_and_public_method_tables_match_the_protos() -> None:
    pool = descriptor_pool.Default()
    for service, methods in IDEMPOTENT_METHODS.items():
        for method in methods:
            assert pool.FindServiceByName(service).FindMethodByName(method) is not None, (service, method)
    named = {(n["service"], n["method"]) for n in service_config()["methodConfig"][0]["name"]}
    assert named == {(s, m) for s, ms in IDEMPOTENT_METHODS.items() for m in ms}
    # Never retried: not idempotent (SendMessage re-attaches by itself instead).
    for never in ("Login", "Register", "RefreshToken", "SendMessage"):
        assert all(never not in methods for methods in IDEMPOTENT_METHODS.values())
    parley_public = {m for m, access in POLICY.items() if access is Access.PUBLIC and m.startswith("/parley.")}
    assert PUBLIC_METHODS == parley_public
    for method in REQUEST_ID_METHODS:
        service, name = method.strip("/").split("/")
        request = pool.FindServiceByName(service).FindMethodByName(name).input_type
        assert "request_id" in request.fields_by_name


def test_package_is_typed() -> None:
    assert (REPO_ROOT / "clients/python/parley/py.typed").is_file()
    assert list((REPO_ROOT / "clients/python/parley/chat/v1").glob("*.pyi"))
