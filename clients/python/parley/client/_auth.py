"""Token handling: attach the access token (or the API key) to every call,
refresh once on UNAUTHENTICATED and retry, decode errors into ParleyError.

Client interceptors on the client's channel do this for every
call, so the generated stubs handed out by ParleyClient get it too. The
interceptor returns call objects of its own (`_UnaryUnaryCall`,
`_UnaryStreamCall`) that wrap the real call and may replace it by a retried
one; they implement the full `grpc.aio` call interface, so `await`, `read()`,
`async for`, `cancel()`, `code()` keep working.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage

from parley.auth.v1 import auth_pb2
from parley.client.channel import PUBLIC_METHODS, PUBLIC_SERVICE_PREFIXES, REQUEST_ID_METHODS
from parley.client.errors import ParleyError

Request = TypeVar("Request", bound=ProtoMessage)
Continuation = Callable[[grpc.aio.ClientCallDetails, Any], Any]


@dataclass(frozen=True)
class Tokens:
    """An access/refresh token pair; persist it to stay logged in.

    The refresh token rotates on every refresh: after `client.tokens` changes,
    the previous refresh token no longer works (and presenting it again revokes
    the session), so persist the new pair each time (see ParleyClient's
    `on_tokens` callback).
    """

    access_token: str
    refresh_token: str
    access_token_expire_time: datetime | None = None
    refresh_token_expire_time: datetime | None = None

    @classmethod
    def from_proto(cls, pair: auth_pb2.TokenPair) -> Tokens:
        def when(field: str) -> datetime | None:
            return getattr(pair, field).ToDatetime(tzinfo=UTC) if pair.HasField(field) else None

        return cls(
            pair.access_token,
            pair.refresh_token,
            when("access_token_expire_time"),
            when("refresh_token_expire_time"),
        )

    def to_dict(self) -> dict[str, str]:
        """JSON-friendly form (expiry times as ISO 8601)."""
        data = {"access_token": self.access_token, "refresh_token": self.refresh_token}
        if self.access_token_expire_time is not None:
            data["access_token_expire_time"] = self.access_token_expire_time.isoformat()
        if self.refresh_token_expire_time is not None:
            data["refresh_token_expire_time"] = self.refresh_token_expire_time.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokens:
        """Inverse of to_dict; raises KeyError/ValueError/TypeError on malformed data."""

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if value else None

        access, refresh = data["access_token"], data["refresh_token"]
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise TypeError("tokens must be strings")
        return cls(access, refresh, when("access_token_expire_time"), when("refresh_token_expire_time"))


# Names the user a service account's API key acts for.
ON_BEHALF_OF = "x-parley-on-behalf-of"


class TokenStore:
    """The credential calls carry: an API key, or the current token pair and
    the refresh that collapses concurrent callers."""

    def __init__(
        self,
        on_change: Callable[[Tokens | None], None] | None = None,
        *,
        api_key: str | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        self._tokens: Tokens | None = None
        self._on_change = on_change
        # An API key never expires mid-session the way an access token does:
        # with one there is nothing to refresh.
        self.api_key = api_key
        self.on_behalf_of = on_behalf_of
        self._lock = asyncio.Lock()
        # Set by ParleyClient: performs RefreshToken(refresh_token) -> TokenPair.
        self.refresher: Callable[[str], Any] | None = None

    @property
    def tokens(self) -> Tokens | None:
        return self._tokens

    @property
    def access_token(self) -> str | None:
        return self._tokens.access_token if self._tokens else None

    @property
    def bearer(self) -> str | None:
        """What `authorization: Bearer` carries: the API key, else the access token."""
        return self.api_key or self.access_token

    def set(self, tokens: Tokens | None) -> None:
        changed = tokens != self._tokens
        self._tokens = tokens
        if changed and self._on_change is not None:
            self._on_change(tokens)

    async def refresh(self, failed_access_token: str | None) -> bool:
        """Make sure the stored access token is newer than the one that failed.

        Concurrent callers that failed with the same token wait for one
        RefreshToken call and reuse its result. Returns True when a newer
        access token is available (retry the call), False when there is
        nothing to refresh with. A refused refresh raises ParleyError (and, if
        the session is gone, forgets the tokens).
        """
        async with self._lock:
            current = self._tokens
            if current is not None and current.access_token != failed_access_token:
                return True  # refreshed (or logged in) by someone else meanwhile
            if current is None or not current.refresh_token or self.refresher is None:
                return False
            try:
                pair = await self.refresher(current.refresh_token)
            except ParleyError as error:
                if error.code == grpc.StatusCode.UNAUTHENTICATED:
                    self.set(None)
                raise
            self.set(Tokens.from_proto(pair))
            return True


def _method_name(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    # grpc.aio hands interceptors bytes (grpcio's own annotation says so); the stubs say str.
    return method.decode() if isinstance(method, bytes) else str(method)  # type: ignore[unreachable]


def _is_public(method: str) -> bool:
    return method in PUBLIC_METHODS or method.startswith(PUBLIC_SERVICE_PREFIXES)


def _with_token(
    details: grpc.aio.ClientCallDetails, token: str | None, on_behalf_of: str | None
) -> grpc.aio.ClientCallDetails:
    pairs = [(k, v) for k, v in (details.metadata or ()) if k.lower() != "authorization"]
    if token:
        pairs.append(("authorization", f"Bearer {token}"))
    if on_behalf_of and not any(k.lower() == ON_BEHALF_OF for k, _ in pairs):
        pairs.append((ON_BEHALF_OF, on_behalf_of))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, grpc.aio.Metadata(*pairs), details.credentials, details.wait_for_ready
    )


def _caller_sets_authorization(details: grpc.aio.ClientCallDetails) -> bool:
    return any(k.lower() == "authorization" for k, _ in (details.metadata or ()))


def _fill_request_id(method: str, request: Any) -> Any:
    """A copy of an AIP-155 create request with request_id set, so that every
    attempt (gRPC retries, the retry after a refresh) is deduplicated."""
    if method in REQUEST_ID_METHODS and not request.request_id:
        filled = type(request)()
        filled.CopyFrom(request)
        filled.request_id = str(uuid.uuid4())
        return filled
    return request


class _Attempt:
    """What one interception needs to start (and restart) its call."""

    def __init__(
        self, store: TokenStore, continuation: Continuation, details: grpc.aio.ClientCallDetails, request: Any
    ) -> None:
        method = _method_name(details)
        self.store = store
        self.continuation = continuation
        self.request = _fill_request_id(method, request)
        # Tokens only for non-public methods, and never over a caller's own header.
        self.managed = not _is_public(method) and not _caller_sets_authorization(details)
        self.details = details
        self.token: str | None = None

    async def start(self) -> Any:
        if self.managed:
            self.token = self.store.bearer
            details = _with_token(self.details, self.token, self.store.on_behalf_of)
        else:
            details = self.details
        return await self.continuation(details, self.request)

    async def should_retry(self, exc: grpc.aio.AioRpcError) -> bool:
        """After UNAUTHENTICATED on a managed call: refresh (once) and say whether to retry."""
        if not self.managed or exc.code() != grpc.StatusCode.UNAUTHENTICATED:
            return False
        return await self.store.refresh(self.token)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Mark the exception as retrieved: the caller sees it through await/code().
    if not task.cancelled():
        task.exception()


class _UnaryUnaryCall(grpc.aio.UnaryUnaryCall[Any, Any]):
    def __init__(self, attempt: _Attempt, call: grpc.aio.UnaryUnaryCall[Any, Any]) -> None:
        self._attempt = attempt
        self._call = call
        self._task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(self._run())
        self._task.add_done_callback(_retrieve)

    async def _run(self) -> Any:
        try:
            return await self._call
        except grpc.aio.AioRpcError as exc:
            # A refused refresh raises its own ParleyError (e.g. UNAUTHENTICATED
            # because the session was revoked, or UNAVAILABLE).
            if not await self._attempt.should_retry(exc):
                raise ParleyError.from_rpc_error(exc) from None
        self._call = await self._attempt.start()
        try:
            return await self._call
        except grpc.aio.AioRpcError as exc:
            raise ParleyError.from_rpc_error(exc) from None

    def __await__(self) -> Any:
        return self._task.__await__()

    async def _settled(self) -> ParleyError | None:
        await asyncio.wait([self._task])
        if self._task.cancelled():
            return None
        error = self._task.exception()
        return error if isinstance(error, ParleyError) else None

    def cancel(self) -> bool:
        self._call.cancel()
        return self._task.cancel()

    def cancelled(self) -> bool:
        return bool(self._task.cancelled() or self._call.cancelled())

    def done(self) -> bool:
        return self._task.done()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._task.add_done_callback(lambda _: callback(self))

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    async def initial_metadata(self) -> Any:
        await self._settled()
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Any:
        await self._settled()
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        if self._task.done() and self._task.cancelled():
            return grpc.StatusCode.CANCELLED
        await self._settled()
        return await self._call.code()

    async def details(self) -> str:
        await self._settled()
        return await self._call.details()

    async def debug_error_string(self) -> str | None:
        await self._settled()
        # Every grpc.aio call has it, but the Call ABC (and so the stubs) does not declare it.
        return await self._call.debug_error_string()  # type: ignore[attr-defined, no-any-return]

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()


class _UnaryStreamCall(grpc.aio.UnaryStreamCall[Any, Any]):
    def __init__(self, attempt: _Attempt, call: grpc.aio.UnaryStreamCall[Any, Any]) -> None:
        self._attempt = attempt
        self._call = call
        self._received = False
        self._retried = False

    async def read(self) -> Any:
        while True:
            try:
                response = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                # Only a stream refused before any response is retried after a refresh.
                if not self._received and not self._retried:
                    self._retried = True
                    if await self._attempt.should_retry(exc):
                        self._call = await self._attempt.start()
                        continue
                raise ParleyError.from_rpc_error(exc) from None
            if response is not grpc.aio.EOF:
                self._received = True
            return response

    def __aiter__(self) -> Any:
        return self._iterate()

    async def _iterate(self) -> Any:
        while (response := await self.read()) is not grpc.aio.EOF:
            yield response

    def cancel(self) -> bool:
        return bool(self._call.cancel())

    def cancelled(self) -> bool:
        return bool(self._call.cancelled())

    def done(self) -> bool:
        return bool(self._call.done())

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._call.add_done_callback(lambda _: callback(self))

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    async def initial_metadata(self) -> Any:
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Any:
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return await self._call.code()

    async def details(self) -> str:
        return await self._call.details()

    async def debug_error_string(self) -> str | None:
        # Every grpc.aio call has it, but the Call ABC (and so the stubs) does not declare it.
        return await self._call.debug_error_string()  # type: ignore[attr-defined, no-any-return]

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()


class UnaryAuthInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Bearer token on every non-public call; one refresh + retry on UNAUTHENTICATED;
    errors raised as ParleyError; empty AIP-155 request_ids filled."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    async def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        attempt = _Attempt(self._store, continuation, client_call_details, request)
        return _UnaryUnaryCall(attempt, await attempt.start())


class StreamAuthInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """The same for server-streaming calls (retried only if refused before any response)."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    async def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        attempt = _Attempt(self._store, continuation, client_call_details, request)
        return _UnaryStreamCall(attempt, await attempt.start())


class UploadAuthInterceptor(grpc.aio.StreamUnaryClientInterceptor):
    """The credential on client-streaming calls (ImportConversations). No retry
    after a refresh: the request stream is consumed as it is sent, so it cannot
    be sent again; ParleyClient raises the error as a ParleyError."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    async def intercept_stream_unary(
        self, continuation: Continuation, client_call_details: grpc.aio.ClientCallDetails, request_iterator: Any
    ) -> Any:
        details = client_call_details
        if not _is_public(_method_name(details)) and not _caller_sets_authorization(details):
            details = _with_token(details, self._store.bearer, self._store.on_behalf_of)
        return await continuation(details, request_iterator)


def interceptors(store: TokenStore) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors to install on a channel (grpc.aio files an interceptor
    under one call arity only, hence one per arity)."""
    return [UnaryAuthInterceptor(store), StreamAuthInterceptor(store), UploadAuthInterceptor(store)]
