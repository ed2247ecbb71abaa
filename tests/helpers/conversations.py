"""Conversations and messages made through ConversationService, for tests to start from."""

from __future__ import annotations

from typing import TypedDict

from parley.conversation.v1 import conversation_pb2 as pb
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.stubs import Stubs


async def new_conversation(stubs: Stubs, account: Account, title: str = "", slug: str = "assistant") -> pb.Conversation:
    response: pb.CreateConversationResponse = await stubs.conversation.CreateConversation(
        pb.CreateConversationRequest(agent_id=await agent_id(stubs.app, slug), title=title), metadata=account.md
    )
    return response.conversation


async def add_message(
    stubs: Stubs, account: Account, conversation_id: str, content: str, role: pb.MessageRole = pb.MESSAGE_ROLE_USER
) -> pb.Message:
    response: pb.CreateMessageResponse = await stubs.conversation.CreateMessage(
        pb.CreateMessageRequest(conversation_id=conversation_id, role=role, content=content),
        metadata=account.md,
    )
    return response.message


class ListFilters(TypedDict, total=False):
    """ListConversationsRequest's filters, as keyword arguments."""

    agent_id: str
    archived: bool
    pinned: bool
    metadata_key: str
    metadata_value: str


class ListFields(ListFilters, total=False):
    """Every field of a ListConversationsRequest, as keyword arguments."""

    page_size: int
    page_token: str
    query: str
