"""Conversions between domain values and protobuf messages used by several handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from parley.auth.v1 import auth_pb2
from parley.conversation.v1 import conversation_pb2

from parley_server.db.models import Conversation, MessageRole, MessageState, Role, User, UserState
# Aliased: `Message` here is google.protobuf's base class (see from_timestamp).
from parley_server.db.models import Message as StoredMessage
from parley_server.domain.providers.base import ChatTurn, TurnRole
from parley_server.domain.errors import FieldViolation, InvalidArgument
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
MESSAGE_ROLE_TO_PROTO = {
    MessageRole.USER: conversation_pb2.MESSAGE_ROLE_USER,
    MessageRole.ASSISTANT: conversation_pb2.MESSAGE_ROLE_ASSISTANT,
    MessageRole.SYSTEM: conversation_pb2.MESSAGE_ROLE_SYSTEM,
}
# UNSPECIFIED and unknown numbers are absent: `.get` gives None, which the domain rejects.
MESSAGE_ROLE_FROM_PROTO = {v: k for k, v in MESSAGE_ROLE_TO_PROTO.items()}
TURN_ROLE_TO_PROTO: dict[TurnRole, conversation_pb2.MessageRole.ValueType] = {
    "user": conversation_pb2.MESSAGE_ROLE_USER,
    "assistant": conversation_pb2.MESSAGE_ROLE_ASSISTANT,
    "system": conversation_pb2.MESSAGE_ROLE_SYSTEM,
}
MESSAGE_STATE_TO_PROTO = {
    MessageState.COMPLETE: conversation_pb2.MESSAGE_STATE_COMPLETE,
    MessageState.STREAMING: conversation_pb2.MESSAGE_STATE_STREAMING,
    MessageState.CANCELLED: conversation_pb2.MESSAGE_STATE_CANCELLED,
    MessageState.FAILED: conversation_pb2.MESSAGE_STATE_FAILED,
}


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


def conversation_to_proto(conversation: Conversation) -> conversation_pb2.Conversation:
    return conversation_pb2.Conversation(
        id=str(conversation.id),
        agent_id=str(conversation.agent_id),
        title=conversation.title,
        archived=conversation.archived,
        pinned=conversation.pinned,
        message_count=conversation.message_count,
        create_time=timestamp(conversation.create_time),
        update_time=timestamp(conversation.update_time),
        last_message_time=timestamp(conversation.last_message_time),
    )


def message_to_proto(message: StoredMessage) -> conversation_pb2.Message:
    """usage is set only once a provider reported tokens (assistant messages)."""
    reported = message.prompt_tokens > 0 or message.completion_tokens > 0
    return conversation_pb2.Message(
        id=str(message.id),
        conversation_id=str(message.conversation_id),
        role=MESSAGE_ROLE_TO_PROTO[message.role],
        content=message.content,
        state=MESSAGE_STATE_TO_PROTO[message.state],
        failure_reason=message.failure_reason,
        usage=conversation_pb2.TokenUsage(
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            total_tokens=message.prompt_tokens + message.completion_tokens,
        )
        if reported
        else None,
        create_time=timestamp(message.create_time),
        update_time=timestamp(message.update_time),
    )


def chat_turn_to_proto(turn: ChatTurn) -> conversation_pb2.AgentMessage:
    return conversation_pb2.AgentMessage(role=TURN_ROLE_TO_PROTO[turn.role], content=turn.content)
