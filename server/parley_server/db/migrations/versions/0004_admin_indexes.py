"""indexes for the admin service: user listing, statistics, waitlist positions

- users (create_time, id): ListUsers' keyset order (newest first) and the
  new-users-per-day range scan of GetStats.
- usage_daily (day, user_id) INCLUDE (agent_id, message_count) replaces
  (day, agent_id): every GetStats series becomes an index-only scan of the
  range, and distinct users per day stream out in index order without a sort.
- waitlist_entries (seq) WHERE approve_time IS NULL: positions are counts of
  pending entries ahead, which this keeps proportional to the position.

Revision ID: 0004_admin_indexes
Revises: 0003_generations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_admin_indexes"
down_revision: str | None = "0003_generations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_users_create_time_id", "users", ["create_time", "id"])
    op.drop_index("ix_usage_daily_day_agent", table_name="usage_daily")
    op.create_index(
        "ix_usage_daily_day_user",
        "usage_daily",
        ["day", "user_id"],
        postgresql_include=["agent_id", "message_count"],
    )
    op.create_index(
        "ix_waitlist_entries_pending_seq",
        "waitlist_entries",
        ["seq"],
        postgresql_where=sa.text("approve_time IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_waitlist_entries_pending_seq", table_name="waitlist_entries")
    op.drop_index("ix_usage_daily_day_user", table_name="usage_daily")
    op.create_index("ix_usage_daily_day_agent", "usage_daily", ["day", "agent_id"])
    op.drop_index("ix_users_create_time_id", table_name="users")
