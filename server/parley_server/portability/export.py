"""Reading a user's data out as records of the export format, one conversation at a time.

A conversation is read in its own short transaction, written as one line and
sent before the next is read, so an export of any size holds one
conversation in memory and no transaction open while the client reads.
Conversations are exported oldest first; one created during the export may
or may not be in it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select

from parley_server.db.database import Database
from parley_server.db.models import Agent, ApiKey, Conversation, Message, MessageFeedback, Session, User
from parley_server.portability.format import ACCOUNT_FORMAT, CONVERSATIONS_FORMAT, dump_line, timestamp


async def conversation_lines(db: Database, user_id: uuid.UUID) -> AsyncIterator[bytes]:
    """The user's conversations as lines of parley.conversations.v1, oldest first."""
    async with db.transaction() as session:
        ids = list(
            (
                await session.scalars(
                    select(Conversation.id)
                    .where(Conversation.user_id == user_id)
                    .order_by(Conversation.create_time, Conversation.id)
                )
            ).all()
        )
    for conversation_id in ids:
        async with db.transaction() as session:
            row = (
                await session.execute(
                    select(Conversation, Agent)
                    .join(Agent, Agent.id == Conversation.agent_id)
                    .where(Conversation.id == conversation_id)
                )
            ).one_or_none()
            if row is None:  # deleted meanwhile
                continue
            messages = (
                await session.scalars(
                    select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq)
                )
            ).all()
        yield dump_line(conversation_record(row[0], row[1], messages))


def conversation_record(conversation: Conversation, agent: Agent, messages: Any) -> dict[str, Any]:
    return {
        "format": CONVERSATIONS_FORMAT,
        "id": str(conversation.id),
        "agent_id": str(agent.id),
        "agent_slug": agent.slug,
        "agent_name": agent.name,
        "title": conversation.title,
        "archived": conversation.archived,
        "pinned": conversation.pinned,
        "metadata": conversation.metadata_,
        "create_time": timestamp(conversation.create_time),
        "update_time": timestamp(conversation.update_time),
        "active_message_id": None if conversation.active_message_id is None else str(conversation.active_message_id),
        "messages": [message_record(message) for message in messages],
    }


def message_record(message: Message) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "parent_id": None if message.parent_id is None else str(message.parent_id),
        "role": message.role.value,
        "content": message.content,
        "state": message.state.value,
        "failure_reason": message.failure_reason,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "create_time": timestamp(message.create_time),
    }


async def account_line(db: Database, user_id: uuid.UUID) -> bytes:
    """What Parley keeps about the account besides conversations, with no hash or secret."""
    async with db.transaction() as session:
        user = await session.get(User, user_id)
        assert user is not None  # the caller was authenticated in this call
        keys = (
            await session.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.create_time))
        ).all()
        sessions = (
            await session.scalars(select(Session).where(Session.user_id == user_id).order_by(Session.create_time))
        ).all()
        ratings = (
            await session.scalars(
                select(MessageFeedback).where(MessageFeedback.user_id == user_id).order_by(MessageFeedback.create_time)
            )
        ).all()
    return dump_line(
        {
            "format": ACCOUNT_FORMAT,
            "user": {
                "id": str(user.id),
                "email": user.email,
                "display_name": user.display_name,
                "role": user.role.value,
                "state": user.state.value,
                "kind": user.kind.value,
                "premium": user.premium,
                "email_verified": user.email_verified,
                "create_time": timestamp(user.create_time),
                "last_login_time": timestamp(user.last_login_time),
            },
            "api_keys": [
                {
                    "id": str(key.id),
                    "name": key.name,
                    "prefix": key.prefix,
                    "scopes": [scope.value for scope in key.scopes],
                    "certificate_identity": key.certificate_identity,
                    "create_time": timestamp(key.create_time),
                    "expire_time": timestamp(key.expire_time),
                    "last_use_time": timestamp(key.last_use_time),
                    "revoke_time": timestamp(key.revoke_time),
                }
                for key in keys
            ],
            "sessions": [
                {
                    "id": str(s.id),
                    "client_address": s.client_address,
                    "create_time": timestamp(s.create_time),
                    "expire_time": timestamp(s.expire_time),
                    "revoke_time": timestamp(s.revoke_time),
                }
                for s in sessions
            ],
            "feedback": [
                {
                    "message_id": str(f.message_id),
                    "conversation_id": str(f.conversation_id),
                    "agent_id": str(f.agent_id),
                    "rating": f.rating.value,
                    "reason": f.reason.value if f.reason else None,
                    "comment": f.comment,
                    "create_time": timestamp(f.create_time),
                    "update_time": timestamp(f.update_time),
                }
                for f in ratings
            ],
        }
    )
