"""Ownership checks shared by every service that serves a user's own data.

Another user's resource is reported exactly like a missing one (NOT_FOUND),
so ids cannot be probed for existence (conversation.proto and chat.proto promise it).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.common.errors import NotFound, Reason
from parley_server.conversations.sql import OWNED_CONVERSATION
from parley_server.conversations.views import ConversationView
from parley_server.db.database import Database
from parley_server.db.models import Conversation, Message


def conversation_not_found() -> NotFound:
    return NotFound("conversation not found", reason=Reason.CONVERSATION_NOT_FOUND)


def message_not_found(message: str = "message not found") -> NotFound:
    """MESSAGE_NOT_FOUND; `message` says more where the caller can act on it."""
    return NotFound(message, reason=Reason.MESSAGE_NOT_FOUND)


async def owned_conversation(
    db: AsyncSession, conversation_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> Conversation:
    """The caller's conversation, or NOT_FOUND (also when it belongs to someone else)."""
    query = select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    conversation = (await db.execute(query)).scalar_one_or_none()
    if conversation is None:
        raise conversation_not_found()
    return conversation


async def owned_conversation_view(
    database: Database, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> ConversationView:
    """`owned_conversation` for a read that changes nothing: one prepared statement, no session."""
    found = await database.fetch(OWNED_CONVERSATION, conversation_id, user_id, into=ConversationView.of)
    if not found:
        raise conversation_not_found()
    return found[0]


async def owned_message(
    db: AsyncSession, message_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> tuple[Message, Conversation]:
    """The caller's message with its conversation, or NOT_FOUND."""
    query = (
        select(Message, Conversation)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id, Conversation.user_id == user_id)
    )
    if for_update:
        query = query.with_for_update(of=Message)
    row = (await db.execute(query)).one_or_none()
    if row is None:
        raise message_not_found()
    return row[0], row[1]
