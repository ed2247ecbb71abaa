"""Conversations and messages made through ConversationService, for tests to start from."""

from __future__ import annotations

from parley.conversation.v1 import conversation_pb2 as pb
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.stubs import Stubs


async def new_conversation(stubs: Stubs, account: Account, title: str = "", slug: str = "assistant") -> pb.Conversation:
    response = await stubs.conversation.CreateConversation(
        pb.CreateConversationRequest(agent_id=await agent_id(stubs.app, slug), title=title), metadata=account.md
    )
    return response.conversation


async def add_message(
    stubs: Stubs, account: Account, conversation_id: str, content: str, role: int = pb.MESSAGE_ROLE_USER
) -> pb.Message:
    response = await stubs.conversation.CreateMessage(
        pb.CreateMessageRequest(conversation_id=conversation_id, role=role, content=content),
        metadata=account.md,  # type: ignore[arg-type]
    )
    return response.message
