"""Conversions between protobuf's well-known types and Python values, shared by every area's handlers.

Bad values in a request are the caller's mistake: INVALID_ARGUMENT naming the
field, never INTERNAL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from parley_server.common.errors import FieldViolation, InvalidArgument


def timestamp(value: datetime | None) -> Timestamp | None:
    """A Timestamp for value, or None (field left unset) when value is None."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(message: Message, field: str) -> datetime | None:
    """The datetime in a request's Timestamp field, or None when it is unset.

    A value protobuf itself cannot convert (out of range) is the caller's
    mistake: INVALID_ARGUMENT naming the field, never INTERNAL.
    """
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument([FieldViolation(field, "is not a valid timestamp")]) from exc


def from_duration(message: Message, field: str) -> timedelta | None:
    """The timedelta in a request's Duration field, or None when it is unset (see from_timestamp)."""
    if not message.HasField(field):
        return None
    value: Duration = getattr(message, field)
    try:
        return value.ToTimedelta()
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument([FieldViolation(field, "is not a valid duration")]) from exc


def duration(value: timedelta) -> Duration:
    result = Duration()
    result.FromTimedelta(value)
    return result
