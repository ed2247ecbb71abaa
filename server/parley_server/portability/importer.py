"""Storing checked conversation records: each in its own transaction, found again on a second import.

Stored ids are derived from the importing user and the ids in the file
(UUIDv5), so importing a file twice finds its conversations and creates
nothing, concurrent imports of one file store each conversation once (the
insert of the conversation row decides), and the tree keeps its shape under
the new ids. A conversation and all its messages are stored in one
transaction: a failure anywhere stores none of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.agents.access_service import AgentAccessService
from parley_server.common.caller import Caller
from parley_server.common.errors import DomainError
from parley_server.db.database import Database
from parley_server.db.models import Agent, Conversation, Message
from parley_server.portability.format import ImportedConversation, ImportedMessage

# Fixed forever: changing it would make every earlier import look new.
IMPORT_NAMESPACE = uuid.UUID("7d0e6c55-3c38-4f4e-9a53-6f1f0c1b2a10")
# Rows per INSERT: well under PostgreSQL's 32,767 bind parameters.
BATCH = 1000


class Outcome(Enum):
    CREATED = "created"
    SKIPPED = "skipped"
    FAILED = "failed"
    IGNORED = "ignored"


@dataclass(frozen=True)
class LineResult:
    """What happened to one line of an import."""

    line: int
    outcome: Outcome
    source_conversation_id: str = ""
    conversation_id: uuid.UUID | None = None
    error: str = ""


class AgentUnavailable(Exception):
    """The record's agent is not here, or the importer may not use it."""


def stored_id(user_id: uuid.UUID, *source_ids: str) -> uuid.UUID:
    """The id an imported conversation or message gets: the same for the same user and file."""
    return uuid.uuid5(IMPORT_NAMESPACE, "/".join([str(user_id), *source_ids]))


async def store(
    database: Database, access: AgentAccessService, caller: Caller, record: ImportedConversation
) -> tuple[Outcome, uuid.UUID]:
    """Store one record unless it was imported before; AgentUnavailable stores nothing."""
    cid = stored_id(caller.user_id, record.source_id)
    async with database.transaction() as db:
        if await db.scalar(select(Conversation.id).where(Conversation.id == cid)) is not None:
            return Outcome.SKIPPED, cid
        agent = await _agent(db, access, caller, record)
        created = await db.scalar(
            pg_insert(Conversation)
            .values(
                id=cid,
                user_id=caller.user_id,
                agent_id=agent.id,
                title=record.title,
                archived=record.archived,
                pinned=record.pinned,
                metadata_=record.metadata,
                message_count=len(record.messages),
                create_time=record.create_time,
                update_time=record.update_time,
                last_message_time=max((m.create_time for m in record.messages), default=None),
            )
            .on_conflict_do_nothing(index_elements=[Conversation.id])
            .returning(Conversation.id)
        )
        if created is None:  # a concurrent import of the same file stored it first
            return Outcome.SKIPPED, cid
        for start in range(0, len(record.messages), BATCH):
            rows = [
                _message_row(caller.user_id, record.source_id, cid, m) for m in record.messages[start : start + BATCH]
            ]
            await db.execute(insert(Message), rows)
        if record.messages:
            active = record.active_source_id or record.messages[-1].source_id
            await db.execute(
                update(Conversation)
                .where(Conversation.id == cid)
                .values(active_message_id=stored_id(caller.user_id, record.source_id, active))
            )
    return Outcome.CREATED, cid


def _message_row(user_id: uuid.UUID, source: str, cid: uuid.UUID, message: ImportedMessage) -> dict[str, object]:
    parent = message.parent_source_id
    return {
        "id": stored_id(user_id, source, message.source_id),
        "conversation_id": cid,
        "role": message.role,
        "content": message.content,
        "state": message.state,
        "failure_reason": message.failure_reason,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "create_time": message.create_time,
        "update_time": message.create_time,
        "parent_id": None if parent is None else stored_id(user_id, source, parent),
    }


async def _agent(db: AsyncSession, access: AgentAccessService, caller: Caller, record: ImportedConversation) -> Agent:
    """The record's agent here: the same id if it exists, else the live agent with its slug."""
    try:
        agent_id = uuid.UUID(record.agent_id) if record.agent_id else None
    except ValueError:
        agent_id = None
    live = select(Agent).where(Agent.delete_time.is_(None))
    agent = None
    if agent_id is not None:
        agent = await db.scalar(live.where(Agent.id == agent_id))
    if agent is None and record.agent_slug:
        agent = await db.scalar(live.where(Agent.slug == record.agent_slug))
    if agent is None:
        raise AgentUnavailable(
            f"agent: no agent here has id {record.agent_id!r} or slug {record.agent_slug!r} "
            "(create it, or change agent_slug in the file to one of this server's agents)"
        )
    try:
        await access.require_access_to(db, caller, agent)
    except DomainError as error:
        raise AgentUnavailable(f"agent {agent.slug!r}: {error.message} ({error.reason})") from error
    return agent
