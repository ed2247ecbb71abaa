"""Message tree: every message has a parent, each conversation an active leaf

- messages.reply_to becomes messages.parent_id: the previous message on the
  message's path (for an assistant message the user message it answers, for
  a user message the message it follows, NULL for a root). Messages with the
  same parent are siblings (a regenerated answer, an edited question),
  ordered by seq. Existing messages without one get the message before them
  (by seq) in their conversation, so a linear conversation becomes one path.
  Indexed for siblings and children; roots have a partial index of their own.
- conversations.active_message_id: the leaf of the path a conversation shows
  (and the model reads); the active path is the walk up parent_id from it.
  Existing conversations get their last message. NULL when empty; deleting
  the message sets it NULL (indexed for that).

Revision ID: 0010_message_tree
Revises: 0009_feedback
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_message_tree"
down_revision: str | None = "0009_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_messages_reply_to_messages", "messages", type_="foreignkey")
    op.alter_column("messages", "reply_to", new_column_name="parent_id")
    op.execute(
        "UPDATE messages AS m SET parent_id = ordered.previous FROM ("
        "SELECT id, lag(id) OVER (PARTITION BY conversation_id ORDER BY seq) AS previous FROM messages"
        ") AS ordered WHERE m.id = ordered.id AND m.parent_id IS NULL AND ordered.previous IS NOT NULL"
    )
    op.create_foreign_key(
        op.f("fk_messages_parent_id_messages"), "messages", "messages", ["parent_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index("ix_messages_parent_id_seq", "messages", ["parent_id", "seq"])
    op.create_index(
        "ix_messages_roots", "messages", ["conversation_id", "seq"], postgresql_where=sa.text("parent_id IS NULL")
    )
    op.add_column("conversations", sa.Column("active_message_id", sa.UUID(), nullable=True))
    op.execute(
        "UPDATE conversations AS c SET active_message_id = last.id FROM ("
        "SELECT DISTINCT ON (conversation_id) conversation_id, id FROM messages ORDER BY conversation_id, seq DESC"
        ") AS last WHERE c.id = last.conversation_id"
    )
    op.create_foreign_key(
        op.f("fk_conversations_active_message_id_messages"),
        "conversations",
        "messages",
        ["active_message_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_conversations_active_message_id", "conversations", ["active_message_id"])


def downgrade() -> None:
    op.drop_index("ix_conversations_active_message_id", table_name="conversations")
    op.drop_constraint(op.f("fk_conversations_active_message_id_messages"), "conversations", type_="foreignkey")
    op.drop_column("conversations", "active_message_id")
    op.drop_index("ix_messages_roots", table_name="messages")
    op.drop_index("ix_messages_parent_id_seq", table_name="messages")
    op.drop_constraint(op.f("fk_messages_parent_id_messages"), "messages", type_="foreignkey")
    op.execute("UPDATE messages SET parent_id = NULL WHERE role <> 'assistant'")
    op.alter_column("messages", "parent_id", new_column_name="reply_to")
    op.create_foreign_key(
        op.f("fk_messages_reply_to_messages"), "messages", "messages", ["reply_to"], ["id"], ondelete="SET NULL"
    )
