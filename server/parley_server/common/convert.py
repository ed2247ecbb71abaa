"""Conversions between protobuf's well-known types and Python values, shared by every area's handlers.

Bad values in a request are the caller's mistake: INVALID_ARGUMENT naming the
field, never INTERNAL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from parley_server.common.clock import EPOCH
from parley_server.common.errors import FieldViolation, InvalidArgument

# A protobuf enum's number type, and the domain value it maps to.
K = TypeVar("K", bound=int)
D = TypeVar("D")


def timestamp(value: datetime | None) -> Timestamp | None:
    """A Timestamp for value, or None (field left unset) when value is None.

    Computed from the offset to the epoch rather than by
    Timestamp.FromDatetime (a struct_time, calendar.timegm and a range check
    that every datetime passes): the same seconds and nanos, 2.1 instead of
    4.5 us each. Where the Timestamp is a field of a message being built,
    `fill_timestamp` is cheaper still.
    """
    if value is None:
        return None
    since_epoch = value - EPOCH  # aware datetimes subtract in UTC whatever their zone
    return Timestamp(seconds=since_epoch.days * 86_400 + since_epoch.seconds, nanos=since_epoch.microseconds * 1000)


def fill_timestamp(field: Timestamp, value: datetime | None) -> None:
    """Set a message's Timestamp field in place to value; None leaves it unset.

    Passing a Timestamp to a message's constructor copies it into the
    message: building a Conversation with three of them took 17 us, filling
    its fields in place 8 (timeit, upb). A ListConversations page builds 20.
    """
    if value is not None:
        since_epoch = value - EPOCH
        field.seconds = since_epoch.days * 86_400 + since_epoch.seconds
        field.nanos = since_epoch.microseconds * 1000


def fill_timestamp_us(field: Timestamp, microseconds: int | None) -> None:
    """`fill_timestamp` for a time given in microseconds since the Unix epoch; None leaves it unset."""
    if microseconds is not None:
        seconds, micros = divmod(microseconds, 1_000_000)
        field.seconds = seconds
        field.nanos = micros * 1000


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


def enum_from_proto(field: str, number: K, values: Mapping[K, D], *, unknown_is_unset: bool = False) -> D | None:
    """The domain value of a request's enum field (at path `field`), or None when it names none.

    UNSPECIFIED (0) is None: what an unset field means is the RPC's rule (a
    filter matches any value; where a value is required, the domain refuses
    None as INVALID_ARGUMENT naming the field, with every other bad field of
    the request). A number this server does not know (a newer client's
    value) is INVALID_ARGUMENT naming the field, at once: read as None it
    could widen a filter. With `unknown_is_unset` it is None like
    UNSPECIFIED instead, for fields the domain always requires, so that it is
    reported with the request's other bad fields and the values there are.
    """
    if number in values:
        return values[number]
    if number == 0 or unknown_is_unset:
        return None
    raise InvalidArgument([FieldViolation(field, f"unknown enum value {number}")])
