"""Conversions between domain values and protobuf messages used by several handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from parley.auth.v1 import auth_pb2

from parley_server.db.models import Role, User, UserState
from parley_server.domain.session_service import TokenPair

ROLE_TO_PROTO = {Role.USER: auth_pb2.ROLE_USER, Role.ADMIN: auth_pb2.ROLE_ADMIN}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}
STATE_TO_PROTO = {
    UserState.PENDING_VERIFICATION: auth_pb2.USER_STATE_PENDING_VERIFICATION,
    UserState.ACTIVE: auth_pb2.USER_STATE_ACTIVE,
    UserState.WAITLISTED: auth_pb2.USER_STATE_WAITLISTED,
    UserState.DISABLED: auth_pb2.USER_STATE_DISABLED,
}
STATE_FROM_PROTO = {v: k for k, v in STATE_TO_PROTO.items()}


def timestamp(value: datetime | None) -> Timestamp | None:
    """A Timestamp for value, or None (field left unset) when value is None."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(message: Message, field: str) -> datetime | None:
    """The datetime in message.field, or None when the field is unset."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def from_duration(message: Message, field: str) -> timedelta | None:
    """The timedelta in message.field (a google.protobuf.Duration), or None when unset."""
    if not message.HasField(field):
        return None
    value: Duration = getattr(message, field)
    return value.ToTimedelta()


def duration(value: timedelta) -> Duration:
    result = Duration()
    result.FromTimedelta(value)
    return result


def user_to_proto(user: User) -> auth_pb2.User:
    return auth_pb2.User(
        id=str(user.id),
        email=user.email,
        display_name=user.display_name,
        role=ROLE_TO_PROTO[user.role],
        state=STATE_TO_PROTO[user.state],
        premium=user.premium,
        email_verified=user.email_verified,
        create_time=timestamp(user.create_time),
        last_login_time=timestamp(user.last_login_time),
    )


def tokens_to_proto(tokens: TokenPair) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access_token=tokens.access_token,
        access_token_expire_time=timestamp(tokens.access_token_expire_time),
        refresh_token=tokens.refresh_token,
        refresh_token_expire_time=timestamp(tokens.refresh_token_expire_time),
    )
