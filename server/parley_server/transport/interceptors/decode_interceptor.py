"""Undecodable request bytes become INVALID_ARGUMENT instead of UNKNOWN.

grpc deserializes a request before any interceptor's `intercept` runs, and a
DecodeError there surfaces as UNKNOWN with the exception text. This
interceptor, innermost in the chain, swaps in a deserializer that turns
undecodable bytes into a marker; the handler's wrapper raises a domain error
where the marker would reach the handler, which the error interceptor shapes
like any other bad input. The outer interceptors copy the inner handler's
deserializer, so the swap takes effect for all.

The wrapper keeps the handler's style, because grpc.aio picks how to drive a
handler from what kind of function it is: an async generator yields its
responses (Parley's streams), a coroutine returns one response or writes
them with `context.write` (the standard health service's Watch). A request
stream (server reflection) is checked message by message as it is read.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError

from parley_server.common.errors import FieldViolation, InvalidArgument, Reason

_MALFORMED = object()

Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]
HANDLER_FACTORIES: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class DecodeInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        streaming = (handler.request_streaming, handler.response_streaming)
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
        return HANDLER_FACTORIES[streaming](
            _guarded(behaviour, handler.request_streaming),
            request_deserializer=_lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def lenient(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _MALFORMED

    return lenient


def _guarded(behaviour: Behaviour, request_streaming: bool) -> Behaviour:
    """`behaviour` refusing undecodable requests, of the same kind as `behaviour`."""

    def checked(request: Any) -> Any:
        return _checked_stream(request) if request_streaming else _checked(request)

    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async for response in behaviour(checked(request), context):
                yield response

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await behaviour(checked(request), context)

    return call


def _checked(request: Any) -> Any:
    if request is _MALFORMED:
        raise InvalidArgument(
            [FieldViolation("request", "is not a valid protobuf message of this RPC's request type")],
            reason=Reason.MALFORMED_REQUEST,
        )
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _checked(request)
