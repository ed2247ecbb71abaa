"""Conversations' tables: conversations and their messages (chat streams write the assistant's)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Computed,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from parley_server.db.models.base import Base, now_column, pg_enum


class MessageRole(enum.Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MessageState(enum.Enum):
    COMPLETE = "complete"
    STREAMING = "streaming"
    CANCELLED = "cancelled"
    FAILED = "failed"


# The states a message ends in: its text is whole and will not change.
FINAL_STATES = frozenset({MessageState.COMPLETE, MessageState.CANCELLED, MessageState.FAILED})


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"))
    title: Mapped[str] = mapped_column(String(200), default="")
    archived: Mapped[bool] = mapped_column(default=False)
    pinned: Mapped[bool] = mapped_column(default=False)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[datetime] = now_column()
    update_time: Mapped[datetime] = now_column()
    last_message_time: Mapped[datetime | None] = mapped_column(default=None)
    # The leaf of the active path (the branch the conversation shows and the
    # model reads): walk parent_id up from it. NULL while empty.
    active_message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL", use_alter=True), default=None
    )
    # Full-text search over the title ('simple' config: no language guessing).
    title_search: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('simple', coalesce(title, ''))", persisted=True)
    )
    # The client's own key/value pairs (column "metadata": declarative classes
    # reserve that attribute name for the table catalogue).
    metadata_: Mapped[dict[str, str]] = mapped_column(
        "metadata", JSONB, default=dict, server_default=text("'{}'::jsonb")
    )

    __table_args__ = (
        # ListConversations: the caller's, newest activity first (keyset on update_time, id).
        Index("ix_conversations_user_update", "user_id", text("update_time DESC"), text("id DESC")),
        Index("ix_conversations_title_search", "title_search", postgresql_using="gin"),
        Index("ix_conversations_create_time", "create_time"),
        Index("ix_conversations_agent_id", "agent_id"),
        # Deleting messages sets active_message_id NULL: found through this.
        Index("ix_conversations_active_message_id", "active_message_id"),
        # ListConversations' metadata filter: `metadata @> {key: value}`.
        Index(
            "ix_conversations_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    # Order of arrival; keyset pagination and "oldest first" use it.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    role: Mapped[MessageRole] = mapped_column(pg_enum(MessageRole, "message_role"))
    content: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[MessageState] = mapped_column(pg_enum(MessageState, "message_state"))
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[datetime] = now_column()
    update_time: Mapped[datetime] = now_column()
    # Full-text search over the text, once the message has ended: a streaming
    # answer's text is rewritten every persist interval, and computing the
    # vector and updating the GIN index each time cost PostgreSQL most of
    # those writes (migration 0013). Stored out of line uncompressed when
    # large (migration 0014): compressing it was a quarter of what PostgreSQL
    # spent on a SendMessage start.
    content_search: Mapped[str | None] = mapped_column(
        TSVECTOR,
        Computed("CASE WHEN state = 'streaming' THEN NULL ELSE to_tsvector('simple', content) END", persisted=True),
    )
    # Advisory-lock key of the replica generating this STREAMING message.
    generation_owner: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The previous message on its path: for an assistant message the user
    # message it answers, for a user message the message it follows; NULL for
    # a root. Messages with the same parent (roots: of the same conversation)
    # are siblings, ordered by seq.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), default=None)

    # INSERT ... RETURNING fills seq and the timestamps, so a new message can be
    # returned to the client without a second round trip to read them back.
    __mapper_args__ = {"eager_defaults": True}

    __table_args__ = (
        Index("ix_messages_conversation_seq", "conversation_id", "seq"),
        Index("ix_messages_streaming_owner", "generation_owner", postgresql_where=text("state = 'streaming'")),
        Index("ix_messages_content_search", "content_search", postgresql_using="gin"),
        Index("ix_messages_create_time", "create_time"),
        # A message's siblings and children.
        Index("ix_messages_parent_id_seq", "parent_id", "seq"),
        Index("ix_messages_roots", "conversation_id", "seq", postgresql_where=text("parent_id IS NULL")),
    )
