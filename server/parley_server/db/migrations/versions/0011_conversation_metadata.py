"""Conversation metadata

- conversations.metadata: the client's own string key/value pairs (at most
  16, as OpenAI's Conversations API allows), a jsonb object, '{}' when none.
  Adding a column with a constant default rewrites no row.
- ix_conversations_metadata: GIN (jsonb_path_ops) for ListConversations'
  one-pair filter, `metadata @> '{"key": "value"}'`; jsonb_path_ops indexes
  only containment, which is all the filter asks, in a smaller index.

Revision ID: 0011_conversation_metadata
Revises: 0010_message_tree
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_conversation_metadata"
down_revision: str | None = "0010_message_tree"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.create_index(
        "ix_conversations_metadata",
        "conversations",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_metadata", table_name="conversations")
    op.drop_column("conversations", "metadata")
