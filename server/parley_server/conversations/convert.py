"""Conversions between conversations' stored rows and the conversation protobuf messages."""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Iterable

from parley.conversation.v1 import conversation_pb2
from parley_server.agents.providers.base import ChatTurn, TurnRole
from parley_server.common.convert import enum_from_proto, fill_timestamp, fill_timestamp_us
from parley_server.common.pagination import Page
from parley_server.conversations.service import (
    KEPT_PAGE_ROWS,
    LISTED_PAGES_KEPT,
    VIEWS_KEPT,
    ConversationChanges,
    ConversationFilter,
)
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


@functools.lru_cache(maxsize=VIEWS_KEPT)
def get_conversation_response(conversation: ConversationView) -> conversation_pb2.GetConversationResponse:
    """GetConversation's response of a view, made once per view: the domain
    answers an unchanged conversation with the view it kept, and a changed
    one (a new row version) is a new key. The response is never changed
    after it is made; gRPC only serializes it."""
    return conversation_pb2.GetConversationResponse(conversation=conversation_to_proto(conversation))


def conversations_response(page: Page[ConversationView]) -> conversation_pb2.ListConversationsResponse:
    """ListConversations' response of a page, made once for as long as the domain keeps the page.

    The domain answers an unchanged listing with the page object it kept
    (ConversationService._listed_page), so its response is kept beside it,
    weakly: it goes when the page does. The response is never changed
    after it is made; gRPC only serializes it.
    """
    response = _responses.get(page)
    if response is None:
        response = _responses[page] = _made_response(page.items, page.next_page_token)
    return response


_responses: weakref.WeakKeyDictionary[Page[ConversationView], conversation_pb2.ListConversationsResponse] = (
    weakref.WeakKeyDictionary()
)


def _made_response(
    conversations: Iterable[ConversationView], next_page_token: str
) -> conversation_pb2.ListConversationsResponse:
    """A page's response made of its rows.

    A page is mostly rows listed before, also when one of them has changed,
    so each row is kept as the bytes of a response holding it alone, keyed
    by the row itself (every field, the row version too: a changed row is a
    new key). Serialized messages concatenated parse as one message whose
    repeated fields hold every part's, so the page's response is those bytes
    joined and parsed once: 8 us for 20 kept rows, where copying each into
    the repeated field took 19 (and building them anew 64).
    """
    response = conversation_pb2.ListConversationsResponse.FromString(
        b"".join([_listed_bytes(conversation) for conversation in conversations])
    )
    response.next_page_token = next_page_token
    return response


# As many as the rows of the pages the domain keeps (a few MB of bytes at most).
@functools.lru_cache(maxsize=LISTED_PAGES_KEPT * KEPT_PAGE_ROWS)
def _listed_bytes(conversation: ConversationView) -> bytes:
    listed = conversation_pb2.ListConversationsResponse()
    _fill_conversation(listed.conversations.add(), conversation)
    return listed.SerializeToString()


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
