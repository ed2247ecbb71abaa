"""Undecodable request bytes become INVALID_ARGUMENT instead of UNKNOWN.

grpc deserializes a request before any interceptor code runs, and a
DecodeError there surfaces as UNKNOWN with the exception text. The
interceptor swaps in a `lenient` deserializer that turns undecodable bytes
into a marker, and passes each request through `checked` (or a request
stream through `checked_stream`, message by message as it is read) on its
way to the handler: that raises a domain error where the marker would reach
the handler, which the error step shapes like any other bad input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.message import DecodeError

from parley_server.common.errors import FieldViolation, InvalidArgument, Reason

_MALFORMED = object()


def lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`deserialize` returning a marker for undecodable bytes instead of raising."""

    def lenient(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _MALFORMED

    return lenient


def checked(request: Any) -> Any:
    """The request, refused if it could not be decoded."""
    if request is _MALFORMED:
        raise InvalidArgument(
            [FieldViolation("request", "is not a valid protobuf message of this RPC's request type")],
            reason=Reason.MALFORMED_REQUEST,
        )
    return request


async def checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The request stream, ending in an error at the first undecodable message."""
    async for request in requests:
        yield checked(request)
