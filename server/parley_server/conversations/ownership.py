"""Ownership checks shared by every service that serves a user's own data.

Another user's resource is reported exactly like a missing one (NOT_FOUND),
so ids cannot be probed for existence (conversation.proto and chat.proto promise it).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.common.errors import NotFound, Reason
from parley_server.db.models import Conversation, Message


async def owned_conversation(
    db: AsyncSession, conversation_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> Conversation:
    """The caller's conversation, or NOT_FOUND (also when it belongs to someone else)."""
    query = select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    conversation = (await db.execute(query)).scalar_one_or_none()
    if conversation is None:
        raise NotFound("conversation not found", reason=Reason.CONVERSATION_NOT_FOUND)
    return conversation


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
        raise NotFound("message not found", reason=Reason.MESSAGE_NOT_FOUND)
    return row[0], row[1]
