"""agents, grants, conversations, messages, usage, idempotency keys

Also seeds the default agent catalogue, so a new install has something to talk
to. All use the offline `echo` provider until an admin points them at a model.

Revision ID: 0002_conversations
Revises: 0001_accounts
Create Date: 2026-11-26 05:45:18.854217
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_conversations"
down_revision: str | None = "0001_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visibility", sa.Enum("public", "premium", "restricted", name="agent_visibility"), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.Enum("echo", "openai", name="agent_provider"), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("api_key_env", sa.String(length=100), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("temperature", sa.Double(), nullable=False),
        sa.Column("max_output_tokens", sa.Integer(), nullable=False),
        sa.Column("title_generation", sa.Boolean(), nullable=False),
        sa.Column("daily_message_quota", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delete_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_index(
        "uq_agents_slug_live", "agents", ["slug"], unique=True, postgresql_where=sa.text("delete_time IS NULL")
    )
    op.create_table(
        "agent_grants",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("granted_by", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_grants_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["granted_by"], ["users.id"], name=op.f("fk_agent_grants_granted_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agent_grants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_grants")),
    )
    op.create_index(op.f("ix_agent_grants_agent_id"), "agent_grants", ["agent_id"], unique=False)
    op.create_index("uq_agent_grants_user_agent", "agent_grants", ["user_id", "agent_id"], unique=True)
    op.create_table(
        "conversations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_message_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "title_search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('simple', coalesce(title, ''))", persisted=True),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_conversations_agent_id_agents")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_conversations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index("ix_conversations_agent_id", "conversations", ["agent_id"], unique=False)
    op.create_index("ix_conversations_create_time", "conversations", ["create_time"], unique=False)
    op.create_index(
        "ix_conversations_title_search", "conversations", ["title_search"], unique=False, postgresql_using="gin"
    )
    op.create_index(
        "ix_conversations_user_update",
        "conversations",
        ["user_id", sa.literal_column("update_time DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("scope", sa.String(length=50), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_idempotency_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "scope", "request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "usage_daily",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("message_count", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_usage_daily_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_daily_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "agent_id", "day", name=op.f("pk_usage_daily")),
    )
    op.create_index("ix_usage_daily_day_agent", "usage_daily", ["day", "agent_id"], unique=False)
    op.create_table(
        "messages",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("conversation_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("role", sa.Enum("user", "assistant", "system", name="message_role"), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "state", sa.Enum("complete", "streaming", "cancelled", "failed", name="message_state"), nullable=False
        ),
        sa.Column("failure_reason", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "content_search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('simple', content)", persisted=True),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("seq", name=op.f("uq_messages_seq")),
    )
    op.create_index("ix_messages_content_search", "messages", ["content_search"], unique=False, postgresql_using="gin")
    op.create_index("ix_messages_conversation_seq", "messages", ["conversation_id", "seq"], unique=False)
    op.create_index("ix_messages_create_time", "messages", ["create_time"], unique=False)
    _seed_agents()


DEFAULT_AGENTS = [
    {
        "slug": "assistant",
        "name": "Assistant",
        "description": "A general helpful assistant for everyday questions.",
        "visibility": "public",
        "system_prompt": "You are a helpful, concise assistant.",
        "title_generation": True,
    },
    {
        "slug": "writer",
        "name": "Writing Coach",
        "description": "Helps draft, edit and polish texts. Premium.",
        "visibility": "premium",
        "system_prompt": "You are a writing coach. Improve clarity and tone; explain your edits briefly.",
        "title_generation": False,
    },
    {
        "slug": "code-reviewer",
        "name": "Code Reviewer",
        "description": "Reviews code for bugs and style. Available on request.",
        "visibility": "restricted",
        "system_prompt": "You are a meticulous code reviewer. Point out bugs first, then style.",
        "title_generation": False,
    },
]


def _seed_agents() -> None:
    agents = sa.table(
        "agents",
        sa.column("id", sa.UUID()),
        sa.column("slug", sa.String()),
        sa.column("name", sa.String()),
        sa.column("description", sa.Text()),
        sa.column("visibility", sa.Enum(name="agent_visibility", create_type=False)),
        sa.column("enabled", sa.Boolean()),
        sa.column("provider", sa.Enum(name="agent_provider", create_type=False)),
        sa.column("model", sa.String()),
        sa.column("base_url", sa.String()),
        sa.column("api_key_env", sa.String()),
        sa.column("system_prompt", sa.Text()),
        sa.column("temperature", sa.Float()),
        sa.column("max_output_tokens", sa.Integer()),
        sa.column("title_generation", sa.Boolean()),
        sa.column("version", sa.Integer()),
    )
    op.bulk_insert(
        agents,
        [
            {
                "id": uuid.uuid4(),
                "enabled": True,
                "provider": "echo",
                "model": "echo",
                "base_url": "",
                "api_key_env": "",
                "temperature": 0.7,
                "max_output_tokens": 1024,
                "version": 1,
                **agent,
            }
            for agent in DEFAULT_AGENTS
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_messages_create_time", table_name="messages")
    op.drop_index("ix_messages_conversation_seq", table_name="messages")
    op.drop_index("ix_messages_content_search", table_name="messages", postgresql_using="gin")
    op.drop_table("messages")
    op.drop_index("ix_usage_daily_day_agent", table_name="usage_daily")
    op.drop_table("usage_daily")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_conversations_user_update", table_name="conversations")
    op.drop_index("ix_conversations_title_search", table_name="conversations", postgresql_using="gin")
    op.drop_index("ix_conversations_create_time", table_name="conversations")
    op.drop_index("ix_conversations_agent_id", table_name="conversations")
    op.drop_table("conversations")
    op.drop_index("uq_agent_grants_user_agent", table_name="agent_grants")
    op.drop_index(op.f("ix_agent_grants_agent_id"), table_name="agent_grants")
    op.drop_table("agent_grants")
    op.drop_index("uq_agents_slug_live", table_name="agents", postgresql_where=sa.text("delete_time IS NULL"))
    op.drop_table("agents")
    op.execute("DROP TYPE message_state, message_role, agent_provider, agent_visibility")
