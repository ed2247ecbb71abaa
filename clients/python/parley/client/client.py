"""ParleyClient: a small typed async client for Parley's gRPC API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar

import grpc

from parley.admin.v1 import admin_pb2_grpc
from parley.agent.v1 import agent_pb2_grpc
from parley.agent_access.v1 import agent_access_pb2_grpc
from parley.api_key.v1 import api_key_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley.client._auth import Tokens, TokenStore, interceptors
from parley.client.channel import channel_options
from parley.client.errors import ParleyError
from parley.client.events import (
    TERMINAL_EVENTS,
    Accepted,
    Cancelled,
    ChatEvent,
    Completed,
    ConversationDeleted,
    ConversationUpdated,
    Failed,
    MessageCompleted,
    MessageCreated,
    MessageDelta,
    TextDelta,
    Usage,
    WatchEvent,
)
from parley.client.tls import Tls
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from parley.portability.v1 import portability_pb2, portability_pb2_grpc

__all__ = ["ParleyClient", "file_chunks"]

log = logging.getLogger("parley.client")

# Stream re-attach after UNAVAILABLE: attempts without progress, and backoff.
STREAM_RECONNECT_ATTEMPTS = 6
STREAM_BACKOFF_INITIAL = 0.1
STREAM_BACKOFF_MAX = 3.0
REFRESH_TIMEOUT = 30.0
DRAIN_TIMEOUT = 5.0


# Bytes per ImportConversations request: well under the server's 4 MiB message limit.
IMPORT_CHUNK_BYTES = 1024 * 1024

StubT = TypeVar("StubT")


def file_chunks(file: BinaryIO, size: int = IMPORT_CHUNK_BYTES) -> Iterator[bytes]:
    """An export file read a chunk at a time for `ParleyClient.import_conversations`, never whole."""
    while chunk := file.read(size):
        yield chunk


def _stub(cls: Callable[[grpc.aio.Channel], StubT], channel: grpc.aio.Channel) -> StubT:
    # The generated *_pb2_grpc modules are untyped; the stub classes are the types.
    return cls(channel)


# The requests that start an exchange (and stream it).
_StartRequest = chat_pb2.SendMessageRequest | chat_pb2.RegenerateMessageRequest | chat_pb2.EditMessageRequest


class _StreamGap(Exception):
    """The server sent text that does not continue what we have; resume instead."""


class ParleyClient:
    """An async client owning one `grpc.aio` channel to a Parley server.

        async with ParleyClient("127.0.0.1:50051") as client:
            await client.login("ada@example.com", "correct horse battery")
            async for event in client.send_message(conversation_id, "Hello"):
                if isinstance(event, TextDelta):
                    print(event.text, end="", flush=True)

    The channel retries UNAVAILABLE for idempotent methods and keeps long
    streams alive (see `parley.client.channel` for which methods and why).
    Every call, including those made through the generated stubs returned by
    `auth`, `conversations`, `agents`, `access`, `admin`, `chat`, `api_keys`,
    `service_accounts` and `portability`, gets the access token (or API key) attached;
    on UNAUTHENTICATED the client refreshes the token pair once (concurrent calls
    share one refresh) and retries the call once.
    Failed calls raise ParleyError (a `grpc.RpcError`) with the decoded error
    details.

    Create the client inside a running event loop. `on_tokens` is called with
    the new pair (or None after logout / a refused refresh) whenever the tokens
    change, e.g. to persist them: refresh tokens rotate, so an old one stops
    working once a refresh happened.

    A program can use an API key instead of logging in (`api_key="pk_..."`):
    it is sent on every call and never refreshed. With a service account's
    key that has SCOPE_ACT_AS_USER, `on_behalf_of=<user id>` makes every call
    act for that user (metadata `x-parley-on-behalf-of`).

    `tls=Tls(ca_file=..., cert_file=..., key_file=...)` connects over TLS with
    the CA that signed the server's certificate and, for mutual TLS, a client
    certificate; `secure=True` uses the system's roots, `credentials=` any
    channel credentials of your own.
    """

    def __init__(
        self,
        target: str,
        *,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        on_tokens: Callable[[Tokens | None], None] | None = None,
        api_key: str | None = None,
        on_behalf_of: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        self.target = target
        self.tls = tls
        self._store = TokenStore(on_tokens, api_key=api_key, on_behalf_of=on_behalf_of)
        self._store.refresher = self._refresh
        opts = channel_options(options)
        chain = interceptors(self._store)
        if tls is not None:
            credentials = credentials or tls.credentials()
        if secure or credentials is not None:
            self._channel = grpc.aio.secure_channel(
                target, credentials or grpc.ssl_channel_credentials(), options=opts, interceptors=chain
            )
        else:
            self._channel = grpc.aio.insecure_channel(target, options=opts, interceptors=chain)
        self._auth = _stub(auth_pb2_grpc.AuthServiceStub, self._channel)
        self._conversations = _stub(conversation_pb2_grpc.ConversationServiceStub, self._channel)
        self._agents = _stub(agent_pb2_grpc.AgentServiceStub, self._channel)
        self._access = _stub(agent_access_pb2_grpc.AgentAccessServiceStub, self._channel)
        self._admin = _stub(admin_pb2_grpc.AdminServiceStub, self._channel)
        self._chat = _stub(chat_pb2_grpc.ChatServiceStub, self._channel)
        self._api_keys = _stub(api_key_pb2_grpc.ApiKeyServiceStub, self._channel)
        self._service_accounts = _stub(api_key_pb2_grpc.ServiceAccountServiceStub, self._channel)
        self._portability = _stub(portability_pb2_grpc.PortabilityServiceStub, self._channel)

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        """Close the channel (in-flight calls are cancelled after `grace` seconds)."""
        await self._channel.close(grace)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel (with the token interceptor)."""
        return self._channel

    # -- generated stubs -----------------------------------------------------

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceStub:
        return self._auth

    @property
    def conversations(self) -> conversation_pb2_grpc.ConversationServiceStub:
        return self._conversations

    @property
    def agents(self) -> agent_pb2_grpc.AgentServiceStub:
        return self._agents

    @property
    def access(self) -> agent_access_pb2_grpc.AgentAccessServiceStub:
        return self._access

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return self._admin

    @property
    def api_keys(self) -> api_key_pb2_grpc.ApiKeyServiceStub:
        return self._api_keys

    @property
    def service_accounts(self) -> api_key_pb2_grpc.ServiceAccountServiceStub:
        return self._service_accounts

    @property
    def chat(self) -> chat_pb2_grpc.ChatServiceStub:
        return self._chat

    @property
    def portability(self) -> portability_pb2_grpc.PortabilityServiceStub:
        return self._portability

    # -- session -------------------------------------------------------------

    @property
    def tokens(self) -> Tokens | None:
        """The current token pair (None when logged out); persist it to stay logged in."""
        return self._store.tokens

    def use_tokens(self, access_token: str, refresh_token: str) -> None:
        """Restore a persisted pair (an expired access token is fine: it is refreshed on first use)."""
        self._store.set(Tokens(access_token, refresh_token))

    async def login(self, email: str, password: str) -> auth_pb2.User:
        """Log in and keep the token pair; returns the user."""
        response: auth_pb2.LoginResponse = await self._auth.Login(auth_pb2.LoginRequest(email=email, password=password))
        self._store.set(Tokens.from_proto(response.tokens))
        return response.user

    async def register(
        self, email: str, password: str, *, display_name: str = "", invite_code: str = ""
    ) -> auth_pb2.User:
        """Create an account (PENDING_VERIFICATION, or WAITLISTED); does not log in."""
        response: auth_pb2.RegisterResponse = await self._auth.Register(
            auth_pb2.RegisterRequest(email=email, password=password, display_name=display_name, invite_code=invite_code)
        )
        return response.user

    async def logout(self, *, all_sessions: bool = False) -> None:
        """Revoke this session (or every session) and forget the tokens.

        The tokens are forgotten even when the server answers UNAUTHENTICATED
        (the session was already gone); other errors are raised and the
        tokens kept, so the caller can try again.
        """
        tokens = self._store.tokens
        if tokens is None:
            return
        try:
            await self._auth.Logout(
                auth_pb2.LogoutRequest(refresh_token=tokens.refresh_token, all_sessions=all_sessions)
            )
        except ParleyError as error:
            if error.code != grpc.StatusCode.UNAUTHENTICATED:
                raise
        self._store.set(None)

    async def _refresh(self, refresh_token: str) -> auth_pb2.TokenPair:
        response: auth_pb2.RefreshTokenResponse = await self._auth.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=refresh_token), timeout=REFRESH_TIMEOUT
        )
        return response.tokens

    # -- export and import (docs/export-format.md) -------------------------------

    async def export_conversations(self) -> AsyncIterator[bytes]:
        """The caller's conversations as JSON Lines, in chunks: write them to a file as they come."""
        request = portability_pb2.ExportConversationsRequest()
        async for response in self._portability.ExportConversations(request):
            yield response.chunk.data

    async def export_account(self) -> AsyncIterator[bytes]:
        """Everything kept about the caller (the account line, then the conversations), in chunks."""
        async for response in self._portability.ExportAccount(portability_pb2.ExportAccountRequest()):
            yield response.chunk.data

    async def import_conversations(
        self, chunks: Iterable[bytes] | AsyncIterable[bytes]
    ) -> portability_pb2.ImportConversationsResponse:
        """Import an export file, given as chunks of at most 1 MiB (see `file_chunks`); the result per line."""

        async def requests() -> AsyncIterator[portability_pb2.ImportConversationsRequest]:
            if isinstance(chunks, AsyncIterable):
                async for chunk in chunks:
                    yield portability_pb2.ImportConversationsRequest(data=chunk)
            else:
                for chunk in chunks:
                    yield portability_pb2.ImportConversationsRequest(data=chunk)

        try:
            response: portability_pb2.ImportConversationsResponse = await self._portability.ImportConversations(
                requests()
            )
        except grpc.aio.AioRpcError as exc:  # an upload is not retried (UploadAuthInterceptor): raise it as is
            raise ParleyError.from_rpc_error(exc) from None
        return response

    async def delete_all_conversations(self) -> int:
        """Delete every conversation of the caller; returns how many."""
        response: portability_pb2.DeleteAllConversationsResponse = await self._portability.DeleteAllConversations(
            portability_pb2.DeleteAllConversationsRequest()
        )
        return response.deleted_count

    # -- chat ----------------------------------------------------------------

    async def send_message(
        self, conversation_id: str, content: str, request_id: str | None = None
    ) -> AsyncIterator[ChatEvent]:
        """Send a user message and stream the answer: Accepted, TextDelta...,
        Usage, then Completed, Failed or Cancelled.

        request_id (AIP-155) defaults to a fresh UUID. If the connection drops
        (UNAVAILABLE) the stream is re-established transparently: before
        Accepted by repeating SendMessage with the same request_id (which
        re-attaches to the same exchange), after it by ResumeStream from the
        last offset received, waiting at least the RetryInfo delay the server
        sends with UNAVAILABLE. Each character is yielded exactly once, with
        contiguous offsets. Leaving the iteration early only disconnects: the
        generation goes on (use cancel() to stop it).
        """
        request = chat_pb2.SendMessageRequest(
            conversation_id=conversation_id, content=content, request_id=request_id or str(uuid.uuid4())
        )
        async for event in self._generation(request, None, 0):
            yield event

    async def regenerate(self, message_id: str, request_id: str | None = None) -> AsyncIterator[ChatEvent]:
        """Generate a new answer in place of the answer message_id (its sibling,
        which becomes the conversation's active answer) and stream it, with the
        events and reconnects of send_message; Accepted names the user message
        answered."""
        request = chat_pb2.RegenerateMessageRequest(message_id=message_id, request_id=request_id or str(uuid.uuid4()))
        async for event in self._generation(request, None, 0):
            yield event

    async def edit_message(
        self, message_id: str, content: str, request_id: str | None = None
    ) -> AsyncIterator[ChatEvent]:
        """Store a new version of the user message message_id (its sibling) and
        stream the answer to it, with the events and reconnects of
        send_message; Accepted carries the new user message."""
        request = chat_pb2.EditMessageRequest(
            message_id=message_id, content=content, request_id=request_id or str(uuid.uuid4())
        )
        async for event in self._generation(request, None, 0):
            yield event

    async def switch_branch(self, message_id: str) -> conversation_pb2.Conversation:
        """Make the branch through message_id the conversation's active one (its
        newest descendant becomes the active leaf); returns the conversation."""
        request = conversation_pb2.SwitchBranchRequest(message_id=message_id)
        response: conversation_pb2.SwitchBranchResponse = await self._conversations.SwitchBranch(request)
        return response.conversation

    async def resume(self, message_id: str, offset: int = 0) -> AsyncIterator[ChatEvent]:
        """Stream an assistant message's text after offset, then live until its
        terminal event (with the same transparent reconnect as send_message)."""
        async for event in self._generation(None, message_id, offset):
            yield event

    async def cancel(self, message_id: str) -> conversation_pb2.Message:
        """Stop a generation (the stop button); returns the message with its partial text."""
        request = chat_pb2.CancelGenerationRequest(message_id=message_id)
        response: chat_pb2.CancelGenerationResponse = await self._chat.CancelGeneration(request)
        return response.message

    async def watch(self, conversation_id: str) -> AsyncIterator[WatchEvent]:
        """The conversation as it is now (ConversationUpdated), then every change to it until it is deleted.

        Nothing after the first event is missed (events the server loses it
        replays from stored state), so list older messages after it. Not
        resumed on disconnect (changes in between would be missed
        silently): on ParleyError UNAVAILABLE, watch again and re-read.
        """
        call = self._chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=conversation_id))
        try:
            while (response := await call.read()) is not grpc.aio.EOF:
                kind = response.WhichOneof("event")
                if kind == "message_created":
                    yield MessageCreated(response.message_created)
                elif kind == "delta":
                    d = response.delta
                    yield MessageDelta(d.message_id, d.text, d.offset)
                elif kind == "message_completed":
                    yield MessageCompleted(response.message_completed)
                elif kind == "conversation_updated":
                    yield ConversationUpdated(response.conversation_updated)
                elif kind == "conversation_deleted":
                    yield ConversationDeleted(response.conversation_deleted)
        finally:
            call.cancel()

    def _start(self, request: _StartRequest) -> Any:
        """The stream call starting an exchange of request's kind."""
        if isinstance(request, chat_pb2.SendMessageRequest):
            return self._chat.SendMessage(request)
        if isinstance(request, chat_pb2.RegenerateMessageRequest):
            return self._chat.RegenerateMessage(request)
        return self._chat.EditMessage(request)

    async def _generation(
        self, request: _StartRequest | None, message_id: str | None, offset: int
    ) -> AsyncIterator[ChatEvent]:
        """The shared loop of send_message, regenerate, edit_message and resume, with reconnects.

        Before Accepted a drop repeats the starting request (its request_id
        re-attaches to the same exchange), after it ResumeStream follows the answer.
        """
        accepted_sent = usage_sent = False
        failures = 0
        while True:
            if message_id is None:
                assert request is not None
                call = self._start(request)
            else:
                call = self._chat.ResumeStream(chat_pb2.ResumeStreamRequest(message_id=message_id, offset=offset))
            try:
                while (response := await call.read()) is not grpc.aio.EOF:
                    event = _chat_event(response)
                    if event is None:
                        continue
                    if isinstance(event, Accepted):
                        message_id = event.assistant_message_id
                        if accepted_sent:
                            continue
                        accepted_sent = True
                    elif isinstance(event, TextDelta):
                        if event.offset > offset:
                            raise _StreamGap
                        if event.offset + len(event.text) <= offset:
                            continue  # replayed text we already yielded
                        event = TextDelta(event.text[offset - event.offset :], offset)
                        offset += len(event.text)
                    elif isinstance(event, Usage):
                        if usage_sent:
                            continue
                        usage_sent = True
                    failures = 0
                    yield event
                    if isinstance(event, TERMINAL_EVENTS):
                        await _drain(call)
                        return
                # The stream ended without a terminal event: treat it as a drop.
                failure: ParleyError | None = None
            except ParleyError as error:
                if error.code != grpc.StatusCode.UNAVAILABLE:
                    raise
                failure = error
            except _StreamGap:
                failure = None
            finally:
                call.cancel()
            failures += 1
            if failures > STREAM_RECONNECT_ATTEMPTS:
                raise failure or ParleyError(
                    grpc.StatusCode.UNAVAILABLE, "the answer stream kept ending early", "STREAM_INTERRUPTED"
                )
            backoff = min(STREAM_BACKOFF_MAX, STREAM_BACKOFF_INITIAL * 2 ** (failures - 1))
            delay = backoff * (0.5 + random.random() / 2)
            if failure is not None and failure.retry_after:
                # The server said when a retry can work (RetryInfo: its database is restarting).
                delay = max(delay, failure.retry_after)
            log.info(
                "chat stream interrupted (%s); re-attaching to %s at offset %d, attempt %d",
                failure or "ended early",
                f"message {message_id}" if message_id else "the request",
                offset,
                failures,
            )
            await asyncio.sleep(delay)


async def _drain(call: Any) -> None:
    """Read a stream to its end (the server closes it right after the terminal
    event), so it finishes with OK instead of being cancelled under the server."""
    with contextlib.suppress(ParleyError, TimeoutError):
        async with asyncio.timeout(DRAIN_TIMEOUT):
            while await call.read() is not grpc.aio.EOF:
                pass


def _chat_event(
    response: chat_pb2.SendMessageResponse
    | chat_pb2.RegenerateMessageResponse
    | chat_pb2.EditMessageResponse
    | chat_pb2.ResumeStreamResponse,
) -> ChatEvent | None:
    kind = response.WhichOneof("event")
    if kind == "accepted" and not isinstance(response, chat_pb2.ResumeStreamResponse):  # ResumeStream has none
        a = response.accepted
        return Accepted(a.user_message, a.assistant_message_id)
    if kind == "delta":
        return TextDelta(response.delta.text, response.delta.offset)
    if kind == "usage":
        u = response.usage.usage
        return Usage(u.prompt_tokens, u.completion_tokens, u.total_tokens)
    if kind == "completed":
        return Completed(response.completed.message)
    if kind == "failed":
        return Failed(response.failed.reason, response.failed.message)
    if kind == "cancelled":
        return Cancelled(response.cancelled.message)
    return None  # an event kind newer than this client: skip it
