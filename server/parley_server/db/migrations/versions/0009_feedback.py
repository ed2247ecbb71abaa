"""Ratings of answers

- message_feedback: one row per rated assistant message (its primary key),
  with the conversation, user and agent it belongs to, thumbs up or down, an
  optional reason and comment. Rows go with their message, conversation or
  user (cascade). Indexed per conversation, and on (update_time, message_id)
  for the admin list, newest change first, and the per-day statistics.

Revision ID: 0009_feedback
Revises: 0008_certificate_identity
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_feedback"
down_revision: str | None = "0008_certificate_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RATING = postgresql.ENUM("thumbs_up", "thumbs_down", name="feedback_rating", create_type=False)
REASON = postgresql.ENUM(
    "inaccurate",
    "unhelpful",
    "incomplete",
    "harmful",
    "ignored_instructions",
    "other",
    name="feedback_reason",
    create_type=False,
)


def upgrade() -> None:
    RATING.create(op.get_bind())
    REASON.create(op.get_bind())
    op.create_table(
        "message_feedback",
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("conversation_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("rating", RATING, nullable=False),
        sa.Column("reason", REASON, nullable=True),
        sa.Column("comment", sa.String(length=2000), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_feedback_message_id_messages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_message_feedback_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_message_feedback_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_message_feedback_agent_id_agents")),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_feedback")),
    )
    op.create_index("ix_message_feedback_conversation_id", "message_feedback", ["conversation_id"])
    op.create_index("ix_message_feedback_update_time_message_id", "message_feedback", ["update_time", "message_id"])


def downgrade() -> None:
    op.drop_table("message_feedback")
    op.execute("DROP TYPE feedback_reason, feedback_rating")
