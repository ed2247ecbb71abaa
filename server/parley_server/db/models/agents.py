"""Agents' tables: the agents, their grants, and per-user daily usage (quotas, GetUsage, statistics)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley_server.db.models.base import Base, now_column, pg_enum


class AgentVisibility(enum.Enum):
    PUBLIC = "public"
    PREMIUM = "premium"
    RESTRICTED = "restricted"


class AgentProvider(enum.Enum):
    ECHO = "echo"
    OPENAI = "openai"


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[AgentVisibility] = mapped_column(pg_enum(AgentVisibility, "agent_visibility"))
    enabled: Mapped[bool] = mapped_column(default=True)
    provider: Mapped[AgentProvider] = mapped_column(pg_enum(AgentProvider, "agent_provider"))
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
    create_time: Mapped[datetime] = now_column()
    update_time: Mapped[datetime] = now_column()
    # Soft delete: conversations keep pointing at the agent, the slug is freed.
    delete_time: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("uq_agents_slug_live", "slug", unique=True, postgresql_where=text("delete_time IS NULL")),)


class AgentGrant(Base):
    __tablename__ = "agent_grants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    expire_time: Mapped[datetime | None] = mapped_column(default=None)
    create_time: Mapped[datetime] = now_column()
    granted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)

    __table_args__ = (Index("uq_agent_grants_user_agent", "user_id", "agent_id", unique=True),)


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
