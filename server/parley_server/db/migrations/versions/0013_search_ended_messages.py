"""Messages are searchable once they have ended

messages.content_search (the tsvector ListConversations' `query` matches,
GIN-indexed) was computed from the content on every write. A streaming
answer's text is rewritten every persist interval, so each of those writes
computed the vector of the whole text so far and updated the GIN index:
1,000 streaming answers persisted 20 times (a 200-word answer at 50 ms a
word, every 0.5 s) cost PostgreSQL 3.31 s of CPU, 166 us a row. The column
is now NULL while the message streams and computed when it ends (complete,
cancelled or failed): the same writes cost 0.55 s, 27 us a row, and the
final write computes the vector once, as before.

A generated column's expression cannot be altered in PostgreSQL 15, so the
column and its index are dropped and added again: this rewrites the messages
table once, under an exclusive lock, computing every stored message's vector.

Revision ID: 0013_search_ended_messages
Revises: 0012_own_schema
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_search_ended_messages"
down_revision: str | None = "0012_own_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _searched(expression: str, *, nullable: bool) -> None:
    """content_search (and its GIN index) again, computed by expression."""
    op.drop_index("ix_messages_content_search", table_name="messages", postgresql_using="gin")
    op.drop_column("messages", "content_search")
    op.add_column(
        "messages",
        sa.Column("content_search", postgresql.TSVECTOR(), sa.Computed(expression, persisted=True), nullable=nullable),
    )
    op.create_index("ix_messages_content_search", "messages", ["content_search"], unique=False, postgresql_using="gin")


def upgrade() -> None:
    _searched("CASE WHEN state = 'streaming' THEN NULL ELSE to_tsvector('simple', content) END", nullable=True)


def downgrade() -> None:
    _searched("to_tsvector('simple', content)", nullable=False)
