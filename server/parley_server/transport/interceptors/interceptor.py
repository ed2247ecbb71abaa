"""Parley's one server interceptor: every RPC passes logging, error mapping,
authentication and request decoding, in that order.

Each step's rules live in their own module (rpc_log, error_status,
authentication, decoding); this module runs them as one plain sequence
around the handler (`_Call`). It replaces a chain of interceptors that cost,
per call, nested context managers, an AsyncExitStack and handler wrappers
built anew, and, per streamed message, three extra async-generator hops:
grpc.aio asks for a method's handler on every call, and the wrapped handler
is built on the method's first call and reused after, so a call allocates
one `_Call`, and a streamed message passes one wrapping generator.

The wrapper keeps the handler's style, because grpc.aio picks how to drive a
handler from what kind of function it is: an async generator yields its
responses (Parley's streams), a coroutine returns one response or writes
them with `context.write` (the standard health service's Watch). For a
stream the sequence stays open until the last message is sent, so auth,
error mapping, logging and metrics see streams whole.

With metrics on, each method's `RpcMetrics` (its label children, looked up
once) is built with its wrapper, and a call increments those.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import grpc

from parley_server.accounts.api_keys import ApiKeyService
from parley_server.accounts.session_service import SessionService
from parley_server.common.caller import current_caller
from parley_server.db.models import Scope
from parley_server.metrics.definitions import UNIMPLEMENTED_CALLS
from parley_server.metrics.rpc import RpcMetrics
from parley_server.transport.interceptors import rpc_log
from parley_server.transport.interceptors.access_policy import Access, access_for, scope_for
from parley_server.transport.interceptors.authentication import Authenticator
from parley_server.transport.interceptors.decoding import checked, checked_stream, lenient
from parley_server.transport.interceptors.error_status import ErrorMapping
from parley_server.transport.interceptors.request_context import (
    Metadata,
    RequestInfo,
    current_request,
    incoming_request_id,
)

Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Any, Context], Any]
HANDLER_FACTORIES: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


@dataclass(frozen=True, slots=True)
class _Method:
    """What the steps need to know of a method, worked out once."""

    name: str
    log_name: str  # rpc_log.method_json(name)
    access: Access | None
    scope: Scope | None  # what an API key needs to call it; None: sessions only
    check: Callable[[Any], Any]  # decoding.checked, or checked_stream for a request stream
    metrics: RpcMetrics | None  # None: metrics off


class RpcInterceptor(grpc.aio.ServerInterceptor):
    """The server's only interceptor; its steps need the sessions to authenticate callers."""

    def __init__(self, sessions: SessionService, keys: ApiKeyService, *, metrics: bool = False) -> None:
        self._auth = Authenticator(sessions, keys)
        self._metrics = metrics
        self._errors = ErrorMapping()
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        name = handler_call_details.method
        handler = self._handlers.get(name)
        if handler is None:
            found = await continuation(handler_call_details)
            if found is None:  # no such method: grpc answers UNIMPLEMENTED
                self._unimplemented(handler_call_details)
                return None
            # Handlers are all added before the server starts, so a method's never changes.
            handler = self._handlers[name] = self._wrap(name, found)
        return handler

    def _unimplemented(self, details: grpc.HandlerCallDetails) -> None:
        """Log and count a call to a method the server lacks, which never reaches `_Call`."""
        metadata: Metadata = details.invocation_metadata or ()
        info = RequestInfo(incoming_request_id(metadata), time.perf_counter())
        rpc_log.write(rpc_log.method_json(details.method), info, "UNIMPLEMENTED")
        if self._metrics:
            UNIMPLEMENTED_CALLS.inc()

    def _wrap(self, name: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        streaming = (handler.request_streaming, handler.response_streaming)
        metrics = RpcMetrics(name, *streaming) if self._metrics else None
        check = checked_stream if handler.request_streaming else checked
        if metrics is not None and handler.request_streaming:
            check = metrics.counting(checked_stream)
        method = _Method(name, rpc_log.method_json(name), access_for(name), scope_for(name), check, metrics)
        # The stubs type these for the synchronous server; grpc.aio calls them
        # with its own ServicerContext. The one the flags name is set.
        behaviour = cast(
            Behaviour,
            {
                (False, False): handler.unary_unary,
                (False, True): handler.unary_stream,
                (True, False): handler.stream_unary,
                (True, True): handler.stream_stream,
            }[streaming],
        )
        wrapper = self._streamed if inspect.isasyncgenfunction(behaviour) else self._awaited
        deserialize = handler.request_deserializer
        return HANDLER_FACTORIES[streaming](
            wrapper(method, behaviour),
            request_deserializer=lenient(deserialize) if deserialize else None,
            response_serializer=handler.response_serializer,
        )

    def _awaited(self, method: _Method, behaviour: Behaviour) -> Behaviour:
        async def awaited(request: Any, context: Context) -> Any:
            async with _Call(self._auth, self._errors, method, context):
                response = await behaviour(method.check(request), context)
                if method.metrics is not None:
                    method.metrics.returned()
                return response

        return awaited

    def _streamed(self, method: _Method, behaviour: Behaviour) -> Behaviour:
        async def streamed(request: Any, context: Context) -> AsyncIterator[Any]:
            async with _Call(self._auth, self._errors, method, context):
                responses = behaviour(method.check(request), context)
                sent = method.metrics.sent if method.metrics is not None else None
                try:
                    async for response in responses:
                        if sent is not None:
                            sent.inc()
                        yield response
                finally:
                    await responses.aclose()

        return streamed


class _Call:
    """One RPC passing the steps: entered before the handler runs, exited after its last response."""

    __slots__ = ("_auth", "_context", "_errors", "_info", "_method", "_outer")

    def __init__(self, auth: Authenticator, errors: ErrorMapping, method: _Method, context: Context) -> None:
        self._auth = auth
        self._errors = errors
        self._method = method
        self._context = context

    async def __aenter__(self) -> None:
        context = self._context
        metadata = context.invocation_metadata() or ()
        self._info = info = RequestInfo(incoming_request_id(metadata), time.perf_counter())
        if self._method.metrics is not None:
            self._method.metrics.start()
        self._outer = current_request.get(), current_caller.get()
        current_request.set(info)
        try:
            caller = await self._auth.caller(metadata, self._method.access, self._method.scope, context.auth_context)
        except BaseException as error:  # a refusal, or the caller gone while it was looked up
            await self._end(error)  # answering an Exception raises its status instead
            raise
        info.caller = caller
        current_caller.set(caller)

    async def __aexit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        await self._end(error)

    async def _end(self, error: BaseException | None) -> None:
        """Restore the context, answer an error with its status (raising, as
        context.abort does), log the RPC's line and count it."""
        # set, not reset(token): a cancelled stream may be finalised in
        # another context, where reset() raises.
        outer_request, outer_caller = self._outer
        current_caller.set(outer_caller)
        try:
            if isinstance(error, Exception):
                await self._errors.answer(self._context, self._method.name, error)
        finally:
            code = rpc_log.final_code(self._context, error)
            if self._method.metrics is not None:
                self._method.metrics.end(code, time.perf_counter() - self._info.started)
            rpc_log.write(self._method.log_name, self._info, code)
            current_request.set(outer_request)
