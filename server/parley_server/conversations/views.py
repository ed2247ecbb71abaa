"""Light read models of conversations and messages, for the paths that skip the ORM.

GetConversation, ListConversations and CreateMessage read plain asyncpg
records (Database.fetch) instead of ORM objects: no identity map, no
attribute instrumentation, no session. These named tuples (built from a
record in C, unlike a frozen dataclass's __init__) carry the ORM models'
fields under the same names, except a ConversationView's times and
metadata (see there), so one converter (conversations/convert.py) serves both.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from asyncpg import Record

from parley_server.db.models import MessageRole, MessageState


class ConversationFields(Protocol):
    """What a conversation's response shows: a Conversation row or a ConversationView."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def agent_id(self) -> uuid.UUID: ...
    @property
    def title(self) -> str: ...
    @property
    def archived(self) -> bool: ...
    @property
    def pinned(self) -> bool: ...
    @property
    def message_count(self) -> int: ...
    @property
    def create_time(self) -> datetime: ...
    @property
    def update_time(self) -> datetime: ...
    @property
    def last_message_time(self) -> datetime | None: ...
    @property
    def active_message_id(self) -> uuid.UUID | None: ...
    @property
    def metadata_(self) -> dict[str, str]: ...


class MessageFields(Protocol):
    """What a message's response shows: a Message row or a MessageView."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def conversation_id(self) -> uuid.UUID: ...
    @property
    def role(self) -> MessageRole: ...
    @property
    def content(self) -> str: ...
    @property
    def state(self) -> MessageState: ...
    @property
    def failure_reason(self) -> str: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def create_time(self) -> datetime: ...
    @property
    def update_time(self) -> datetime: ...
    @property
    def parent_id(self) -> uuid.UUID | None: ...


class ConversationView(NamedTuple):
    """A conversation as GetConversation and ListConversations read it.

    Its times are microseconds since the Unix epoch, computed by PostgreSQL
    (sql.py): asyncpg makes a datetime of a timestamptz in Python, about
    1.3 us each, and a page of 21 rows has 63 of them. Fetching such a page
    took 200-210 us of client CPU with the timestamptz columns, 120-135 with
    these (asyncpg, embedded PostgreSQL 16, 2,000 fetches each), and a
    response needs the microseconds anyway. Its metadata is JSON text, None
    when there is none (the common case, then parsed never). Its version is
    the row's xmin, new with every change of the row: ListConversations
    keeps the pages it read under their rows' (id, version) pairs
    (db/versioned_rows.py).
    """

    id: uuid.UUID
    agent_id: uuid.UUID
    title: str
    archived: bool
    pinned: bool
    message_count: int
    create_time_us: int
    update_time_us: int
    last_message_time_us: int | None
    active_message_id: uuid.UUID | None
    metadata_json: str | None
    version: int

    @classmethod
    def of(cls, record: Record) -> ConversationView:
        """From a record of sql.py's conversation columns, in that order."""
        return cls._make(record)


class MessageView(NamedTuple):
    id: uuid.UUID
    conversation_id: uuid.UUID
    role: MessageRole
    content: str
    state: MessageState
    failure_reason: str
    prompt_tokens: int
    completion_tokens: int
    create_time: datetime
    update_time: datetime
    parent_id: uuid.UUID | None

    @classmethod
    def of(cls, record: Record | tuple[Any, ...]) -> MessageView:
        """From a record (or a record's slice) of sql.py's message columns; enums arrive as their text."""
        return cls._make(
            (
                record[0],
                record[1],
                MessageRole(record[2]),
                record[3],
                MessageState(record[4]),
                record[5],
                record[6],
                record[7],
                record[8],
                record[9],
                record[10],
            )
        )


class ListedMessage(NamedTuple):
    """A message as ListMessages reads it: with its seq (the page's keyset)
    and its siblings (how many, itself included, and its place among them)."""

    message: MessageView
    seq: int
    sibling_count: int
    sibling_index: int

    @classmethod
    def of(cls, record: Record) -> ListedMessage:
        """From a record of sql.py's ListMessages columns: MessageView's, then the other three."""
        return cls(MessageView.of(record), record[11], record[12], record[13])
