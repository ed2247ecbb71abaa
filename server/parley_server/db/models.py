"""SQLAlchemy models: the tables PostgreSQL keeps for Parley.

Foreign keys to users cascade on delete so that deleting an account removes
everything it owns in one statement, whichever code path deletes it.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Computed,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base; naming convention keeps migration constraint names stable."""

    type_annotation_map = {datetime: DateTime(timezone=True), uuid.UUID: UUID(as_uuid=True)}


Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Role(enum.Enum):
    USER = "user"
    ADMIN = "admin"


class UserState(enum.Enum):
    PENDING_VERIFICATION = "pending_verification"
    ACTIVE = "active"
    WAITLISTED = "waitlisted"
    DISABLED = "disabled"


class AgentVisibility(enum.Enum):
    PUBLIC = "public"
    PREMIUM = "premium"
    RESTRICTED = "restricted"


class AgentProvider(enum.Enum):
    ECHO = "echo"
    OPENAI = "openai"


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


class TokenPurpose(enum.Enum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


def _now() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.USER)
    state: Mapped[UserState] = mapped_column(_enum(UserState, "user_state"))
    premium: Mapped[bool] = mapped_column(default=False)
    email_verified: Mapped[bool] = mapped_column(default=False)
    create_time: Mapped[datetime] = _now()
    last_login_time: Mapped[datetime | None] = mapped_column(default=None)

    # ListUsers (newest first, keyset on create_time, id) and GetStats' new users per day.
    __table_args__ = (Index("ix_users_create_time_id", "create_time", "id"),)


class Session(Base):
    """One login: the family of refresh tokens rotated from it. Access tokens
    carry its id, so revoking it cuts them off too."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    create_time: Mapped[datetime] = _now()
    expire_time: Mapped[datetime]
    revoke_time: Mapped[datetime | None] = mapped_column(default=None)
    client_address: Mapped[str] = mapped_column(String(100), default="")


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    # SHA-256 of the opaque token; the token itself is never stored.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    create_time: Mapped[datetime] = _now()
    # Set when the token was exchanged; a second exchange is a reuse.
    rotate_time: Mapped[datetime | None] = mapped_column(default=None)


class EmailToken(Base):
    """Single-use tokens sent by email (verification, password reset)."""

    __tablename__ = "email_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(_enum(TokenPurpose, "token_purpose"))
    create_time: Mapped[datetime] = _now()
    expire_time: Mapped[datetime]
    use_time: Mapped[datetime | None] = mapped_column(default=None)


class Invite(Base):
    """Invite codes that let a registration skip the waitlist."""

    __tablename__ = "invites"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    create_time: Mapped[datetime] = _now()
    expire_time: Mapped[datetime]
    use_time: Mapped[datetime | None] = mapped_column(default=None)


class WaitlistEntry(Base):
    __tablename__ = "waitlist_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    # Monotonic order of arrival; positions are counted on it.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    create_time: Mapped[datetime] = _now()
    approve_time: Mapped[datetime | None] = mapped_column(default=None)
    invite_sent: Mapped[bool] = mapped_column(default=False)

    # Positions count the pending entries ahead of one.
    __table_args__ = (Index("ix_waitlist_entries_pending_seq", "seq", postgresql_where=text("approve_time IS NULL")),)


class RateLimitCounter(Base):
    """Fixed-window counters shared by every replica (login failures, resends)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer)


class OutboxEmail(Base):
    """Emails kept in the database by the outbox backend (development, tests)."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_outbox_emails_recipient_id", "recipient", "id"),)


class IdempotencyKey(Base):
    """AIP-155 request ids: the first resource a (user, scope, request id) created.

    The key row is inserted in the same transaction as the resource, so a
    concurrent retry blocks on the unique key until the first commits, then
    finds its resource instead of creating a second one.
    """

    __tablename__ = "idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(50), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    resource_id: Mapped[uuid.UUID]
    create_time: Mapped[datetime] = _now()


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[AgentVisibility] = mapped_column(_enum(AgentVisibility, "agent_visibility"))
    enabled: Mapped[bool] = mapped_column(default=True)
    provider: Mapped[AgentProvider] = mapped_column(_enum(AgentProvider, "agent_provider"))
    model: Mapped[str] = mapped_column(String(200), default="")
    base_url: Mapped[str] = mapped_column(String(500), default="")
    # Name of the environment variable that holds the API key; never the key.
    api_key_env: Mapped[str] = mapped_column(String(100), default="")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    temperature: Mapped[float] = mapped_column(default=0.7)
    max_output_tokens: Mapped[int] = mapped_column(Integer, default=1024)
    title_generation: Mapped[bool] = mapped_column(default=False)
    daily_message_quota: Mapped[int | None] = mapped_column(Integer, default=None)
    # Bumped on every update; provider clients are cached per (id, version).
    version: Mapped[int] = mapped_column(Integer, default=1)
    create_time: Mapped[datetime] = _now()
    update_time: Mapped[datetime] = _now()
    # Soft delete: conversations keep pointing at the agent, the slug is freed.
    delete_time: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("uq_agents_slug_live", "slug", unique=True, postgresql_where=text("delete_time IS NULL")),)


class AgentGrant(Base):
    __tablename__ = "agent_grants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    expire_time: Mapped[datetime | None] = mapped_column(default=None)
    create_time: Mapped[datetime] = _now()
    granted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)

    __table_args__ = (Index("uq_agent_grants_user_agent", "user_id", "agent_id", unique=True),)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"))
    title: Mapped[str] = mapped_column(String(200), default="")
    archived: Mapped[bool] = mapped_column(default=False)
    pinned: Mapped[bool] = mapped_column(default=False)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[datetime] = _now()
    update_time: Mapped[datetime] = _now()
    last_message_time: Mapped[datetime | None] = mapped_column(default=None)
    # Full-text search over the title ('simple' config: no language guessing).
    title_search: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('simple', coalesce(title, ''))", persisted=True)
    )

    __table_args__ = (
        # ListConversations: the caller's, newest activity first (keyset on update_time, id).
        Index("ix_conversations_user_update", "user_id", text("update_time DESC"), text("id DESC")),
        Index("ix_conversations_title_search", "title_search", postgresql_using="gin"),
        Index("ix_conversations_create_time", "create_time"),
        Index("ix_conversations_agent_id", "agent_id"),
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    # Order of arrival; keyset pagination and "oldest first" use it.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    role: Mapped[MessageRole] = mapped_column(_enum(MessageRole, "message_role"))
    content: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[MessageState] = mapped_column(_enum(MessageState, "message_state"))
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[datetime] = _now()
    update_time: Mapped[datetime] = _now()
    content_search: Mapped[str] = mapped_column(TSVECTOR, Computed("to_tsvector('simple', content)", persisted=True))
    # Advisory-lock key of the replica generating this STREAMING message.
    generation_owner: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # For an assistant message: the user message it answers.
    reply_to: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), default=None)

    # INSERT ... RETURNING fills seq and the timestamps, so a new message can be
    # returned to the client without a second round trip to read them back.
    __mapper_args__ = {"eager_defaults": True}

    __table_args__ = (
        Index("ix_messages_conversation_seq", "conversation_id", "seq"),
        Index("ix_messages_streaming_owner", "generation_owner", postgresql_where=text("state = 'streaming'")),
        Index("ix_messages_content_search", "content_search", postgresql_using="gin"),
        Index("ix_messages_create_time", "create_time"),
    )


class UsageDaily(Base):
    """Per user, agent and UTC day: chat messages sent and tokens used.

    Serves quotas (today's row), GetUsage and the admin statistics, which stay
    fast on millions of messages because they read this rollup instead.
    """

    __tablename__ = "usage_daily"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    message_count: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)

    # GetStats: index-only scans of a day range, distinct users per day in index order.
    __table_args__ = (
        Index("ix_usage_daily_day_user", "day", "user_id", postgresql_include=["agent_id", "message_count"]),
    )


class StatsDay(Base):
    """Per finished UTC day: the distinct users who sent messages (GetStats).

    A stored copy of what usage_daily says about a day that is over, shared
    by every replica (see domain/stats_rollup.py). Distinct users cannot be
    summed over agents, so they are kept per day. A trigger on usage_daily
    (migration 0005) deletes the days whose usage rows are deleted.
    """

    __tablename__ = "stats_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    active_users: Mapped[int] = mapped_column(BigInteger)


class StatsDayAgent(Base):
    """Per finished UTC day and agent: messages sent; only agents with messages.

    Goes with its StatsDay row, so a day is stored whole or not at all. No key
    to agents: a derived row, forgotten with its day when usage rows go.
    """

    __tablename__ = "stats_day_agent"

    day: Mapped[date] = mapped_column(ForeignKey("stats_day.day", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger)
