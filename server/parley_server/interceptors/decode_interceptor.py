"""Malformed request bytes become INVALID_ARGUMENT instead of UNKNOWN.

grpc deserializes a request before any interceptor's `intercept` runs, and a
DecodeError there surfaces as UNKNOWN with the exception text. This
interceptor, innermost in the chain, swaps in a deserializer that turns
undecodable bytes into a marker; its handler then raises a domain error, which
the error interceptor shapes like any other bad input. The outer interceptors
copy the inner handler's deserializer, so the swap takes effect for all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from parley_server.domain.errors import FieldViolation, InvalidArgument, Reason

_MALFORMED = object()


def _refuse() -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation("request", "is not a valid protobuf message of this RPC's request type")],
        reason=Reason.MALFORMED_REQUEST,
    )


class DecodeInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        deserialize = handler.request_deserializer

        def lenient(data: bytes) -> Any:
            try:
                return deserialize(data)
            except DecodeError:
                return _MALFORMED

        if handler.response_streaming:
            stream = handler.unary_stream

            async def guarded_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                if request is _MALFORMED:
                    raise _refuse()
                async for response in stream(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                guarded_stream, request_deserializer=lenient, response_serializer=handler.response_serializer
            )
        unary = handler.unary_unary

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is _MALFORMED:
                raise _refuse()
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=lenient, response_serializer=handler.response_serializer
        )
