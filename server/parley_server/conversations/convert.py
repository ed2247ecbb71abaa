"""Conversions between conversations' stored rows and the conversation protobuf messages."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from parley.conversation.v1 import conversation_pb2
from parley_server.agents.providers.base import ChatTurn, TurnRole
from parley_server.common.convert import enum_from_proto, fill_timestamp, fill_timestamp_us
from parley_server.conversations.service import ConversationChanges, ConversationFilter
from parley_server.conversations.views import ConversationFields, ConversationView, MessageFields
from parley_server.db.models import MessageRole, MessageState

MESSAGE_ROLE_TO_PROTO = {
    MessageRole.USER: conversation_pb2.MESSAGE_ROLE_USER,
    MessageRole.ASSISTANT: conversation_pb2.MESSAGE_ROLE_ASSISTANT,
    MessageRole.SYSTEM: conversation_pb2.MESSAGE_ROLE_SYSTEM,
}
MESSAGE_ROLE_FROM_PROTO = {v: k for k, v in MESSAGE_ROLE_TO_PROTO.items()}
TURN_ROLE_TO_PROTO: dict[TurnRole, conversation_pb2.MessageRole] = {
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


def conversation_to_proto(conversation: ConversationFields | ConversationView) -> conversation_pb2.Conversation:
    return _fill_conversation(conversation_pb2.Conversation(), conversation)


# Rows whose Conversation message add_conversations keeps, serialized (a few MB at most).
CONVERSATION_BYTES_KEPT = 4096


def add_conversations(
    target: RepeatedCompositeFieldContainer[conversation_pb2.Conversation],
    conversations: Iterable[ConversationView],
) -> None:
    """Append conversations to a response's repeated field.

    A ListConversations page is mostly rows listed before (the web page's
    sidebar lists them again after every exchange), so each row's message is
    kept serialized, keyed by the row itself (every field: a changed row is
    a new key), and copied into the field: a page of 20 rows fetched anew
    took 35 instead of 64 us (2,000 pages from PostgreSQL, timed in one
    process). Each is copied into a message made in place by add(): a
    message built first and then passed in would be copied once more.
    """
    for conversation in conversations:
        target.add().MergeFromString(_conversation_bytes(conversation))


@functools.lru_cache(maxsize=CONVERSATION_BYTES_KEPT)
def _conversation_bytes(conversation: ConversationView) -> bytes:
    return _fill_conversation(conversation_pb2.Conversation(), conversation).SerializeToString()


def _fill_conversation(
    target: conversation_pb2.Conversation, conversation: ConversationFields | ConversationView
) -> conversation_pb2.Conversation:
    """A stored row (datetimes) or a view (microseconds since the epoch) into target."""
    target.id = str(conversation.id)
    target.agent_id = str(conversation.agent_id)
    target.title = conversation.title
    target.archived = conversation.archived
    target.pinned = conversation.pinned
    target.message_count = conversation.message_count
    if conversation.active_message_id is not None:
        target.active_message_id = str(conversation.active_message_id)
    if isinstance(conversation, ConversationView):
        fill_timestamp_us(target.create_time, conversation.create_time_us)
        fill_timestamp_us(target.update_time, conversation.update_time_us)
        fill_timestamp_us(target.last_message_time, conversation.last_message_time_us)
        if conversation.metadata_json is not None:
            target.metadata.update(json.loads(conversation.metadata_json))
    else:
        fill_timestamp(target.create_time, conversation.create_time)
        fill_timestamp(target.update_time, conversation.update_time)
        fill_timestamp(target.last_message_time, conversation.last_message_time)
        target.metadata.update(conversation.metadata_)
    return target


def message_to_proto(message: MessageFields, siblings: tuple[int, int] | None = None) -> conversation_pb2.Message:
    """usage is set only once a provider reported tokens (assistant messages);
    siblings (count, index) where the read computed them (ListMessages)."""
    reported = message.prompt_tokens > 0 or message.completion_tokens > 0
    result = conversation_pb2.Message(
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
    )
    fill_timestamp(result.create_time, message.create_time)
    fill_timestamp(result.update_time, message.update_time)
    if message.parent_id is not None:
        result.parent_id = str(message.parent_id)
    if siblings is not None:
        result.sibling_count, result.sibling_index = siblings
    return result


def chat_turn_to_proto(turn: ChatTurn) -> conversation_pb2.AgentMessage:
    return conversation_pb2.AgentMessage(role=TURN_ROLE_TO_PROTO[turn.role], content=turn.content)


def message_role_from_proto(request: conversation_pb2.CreateMessageRequest) -> MessageRole | None:
    """CreateMessage's role; None for UNSPECIFIED and for a number from a newer client
    alike, which the domain refuses with the request's other bad fields."""
    return enum_from_proto("role", request.role, MESSAGE_ROLE_FROM_PROTO, unknown_is_unset=True)


def conversation_filter_from_proto(request: conversation_pb2.ListConversationsRequest) -> ConversationFilter:
    return ConversationFilter(
        agent_id=request.agent_id,
        archived=request.archived if request.HasField("archived") else None,
        pinned=request.pinned if request.HasField("pinned") else None,
        query=request.query,
        metadata_key=request.metadata_key,
        metadata_value=request.metadata_value if request.HasField("metadata_value") else None,
    )


def conversation_changes_from_proto(conversation: conversation_pb2.Conversation) -> ConversationChanges:
    """UpdateConversation's new values (the domain reads those the update mask names)."""
    return ConversationChanges(
        title=conversation.title,
        archived=conversation.archived,
        pinned=conversation.pinned,
        metadata=dict(conversation.metadata),
    )
