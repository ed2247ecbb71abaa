"""stored statistics of finished UTC days, shared by every replica

- stats_day: per finished UTC day, the distinct users who sent messages
  (not a sum over agents, so it is kept per day).
- stats_day_agent: per finished UTC day and agent, the messages sent; its
  rows go with their stats_day row (cascade), so a day is stored whole or
  not at all.
- A statement trigger on usage_daily forgets the stored days whose usage rows
  are deleted (accounts deleted, by cascade, or any other delete) or
  truncated, in the deleting transaction. It first takes the stats advisory
  lock exclusively; fills hold it shared, so a fill that read the rows before
  the delete commits first and is removed with the rest. The lock key is
  STATS_LOCK_KEY of parley_server.db.locks ("stats" in ASCII), spelled in hex
  as this migration first wrote it.

Revision ID: 0005_stats_rollup
Revises: 0004_admin_indexes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley_server.db.locks import STATS_LOCK_KEY

revision: str = "0005_stats_rollup"
down_revision: str | None = "0004_admin_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORGET_FUNCTION = f"""
CREATE FUNCTION stats_forget_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_advisory_xact_lock(x'{STATS_LOCK_KEY:x}'::bigint);
        DELETE FROM stats_day;
    ELSIF EXISTS (SELECT FROM gone) THEN
        PERFORM pg_advisory_xact_lock(x'{STATS_LOCK_KEY:x}'::bigint);
        DELETE FROM stats_day WHERE day IN (SELECT DISTINCT day FROM gone);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "stats_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("active_users", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_stats_day")),
    )
    op.create_table(
        "stats_day_agent",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["day"],
            ["stats_day.day"],
            name=op.f("fk_stats_day_agent_day_stats_day"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("day", "agent_id", name=op.f("pk_stats_day_agent")),
    )
    op.execute(FORGET_FUNCTION)
    op.execute(
        "CREATE TRIGGER usage_daily_delete_forgets_stats AFTER DELETE ON usage_daily"
        " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION stats_forget_days()"
    )
    op.execute(
        "CREATE TRIGGER usage_daily_truncate_forgets_stats AFTER TRUNCATE ON usage_daily"
        " FOR EACH STATEMENT EXECUTE FUNCTION stats_forget_days()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER usage_daily_truncate_forgets_stats ON usage_daily")
    op.execute("DROP TRIGGER usage_daily_delete_forgets_stats ON usage_daily")
    op.execute("DROP FUNCTION stats_forget_days()")
    op.drop_table("stats_day_agent")
    op.drop_table("stats_day")
