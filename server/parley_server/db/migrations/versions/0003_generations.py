"""generation ownership and reply links on messages

`generation_owner` is the advisory-lock key of the replica running a
STREAMING message's generation: while that replica lives it holds the lock,
so any replica can tell a dead owner (the lock is free) and mark its
generations FAILED. `reply_to` links an assistant message to the user message
it answers (how a retried SendMessage finds both halves of its exchange).

Revision ID: 0003_generations
Revises: 0002_conversations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_generations"
down_revision: str | None = "0002_conversations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("generation_owner", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("reply_to", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_messages_reply_to_messages"), "messages", "messages", ["reply_to"], ["id"], ondelete="SET NULL"
    )
    op.create_index(
        "ix_messages_streaming_owner",
        "messages",
        ["generation_owner"],
        postgresql_where=sa.text("state = 'streaming'"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_streaming_owner", table_name="messages")
    op.drop_constraint(op.f("fk_messages_reply_to_messages"), "messages", type_="foreignkey")
    op.drop_column("messages", "reply_to")
    op.drop_column("messages", "generation_owner")
