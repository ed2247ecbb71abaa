"""Helpers shared by the ConversationService tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from parley.conversation.v1 import conversation_pb2 as pb
from parley_server.app import App
from tests.helpers.support import Account, Stubs


async def sql(app: App, statement: str, **params: Any) -> list[Any]:
    """Run one SQL statement in its own transaction; the rows it returns, if any."""
    async with app.database.transaction() as db:
        result = await db.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def agent_id(app: App, slug: str = "assistant") -> str:
    rows = await sql(app, "SELECT id FROM agents WHERE slug = :slug AND delete_time IS NULL", slug=slug)
    return str(rows[0][0])


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
