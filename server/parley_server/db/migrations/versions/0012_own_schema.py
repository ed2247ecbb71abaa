"""Parley's tables into a schema of their own

Parley used to create its tables wherever the database URL's search path
led, usually `public`, where an application sharing the database keeps its
own users, conversations and messages. Now every connection works in the
schema PARLEY_DB_SCHEMA (default `parley`; env.py creates it), and this
moves an existing install there: its tables (with their indexes,
constraints, triggers and owned sequences), enum types, the statistics
trigger function and Alembic's version table, renamed nothing and rewritten
nothing (ALTER ... SET SCHEMA only changes the catalog). On a fresh database
every earlier migration already created everything in the schema: the
version table is there, and nothing moves.

Either way the trigger function of 0005 is written again: advisory-lock
keys are database-wide, so each is now hashed with the schema
(parley_server.db.locks.scoped), and it takes the scoped STATS_LOCK_KEY;
it names its tables unqualified, so its search path is pinned to Parley's
schema, whichever session fires it.

Replicas of the previous version must be stopped before this runs: they
look for the tables where they were.

Revision ID: 0012_own_schema
Revises: 0011_conversation_metadata
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from parley_server.db.locks import STATS_LOCK_KEY

revision: str = "0012_own_schema"
down_revision: str | None = "0011_conversation_metadata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# migrations/env.py runs the upgrade of an install older than this one with its legacy schema visible.
MOVES_INTO_SCHEMA = True

# Everything migrations 0001-0011 created (later ones create in the schema).
TABLES = (
    "invites",
    "outbox_emails",
    "rate_limit_counters",
    "users",
    "waitlist_entries",
    "email_tokens",
    "sessions",
    "refresh_tokens",
    "agents",
    "agent_grants",
    "conversations",
    "idempotency_keys",
    "usage_daily",
    "messages",
    "stats_day",
    "stats_day_agent",
    "replicas",
    "api_keys",
    "message_feedback",
    "alembic_version",
)
TYPES = (
    "user_role",
    "user_state",
    "token_purpose",
    "agent_visibility",
    "agent_provider",
    "message_role",
    "message_state",
    "api_key_scope",
    "user_kind",
    "feedback_rating",
    "feedback_reason",
)
FUNCTION = "stats_forget_days()"
# 0005's function, with {key} the lock key's SQL and {config} its settings.
FORGET_FUNCTION = """
CREATE OR REPLACE FUNCTION stats_forget_days() RETURNS trigger LANGUAGE plpgsql {config} AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_advisory_xact_lock({key});
        DELETE FROM stats_day;
    ELSIF EXISTS (SELECT FROM gone) THEN
        PERFORM pg_advisory_xact_lock({key});
        DELETE FROM stats_day WHERE day IN (SELECT DISTINCT day FROM gone);
    END IF;
    RETURN NULL;
END
$$
"""
UNSCOPED_KEY = f"x'{STATS_LOCK_KEY:x}'::bigint"


def upgrade() -> None:
    bind = op.get_bind()
    target = bind.execute(text("SELECT current_schema()")).scalar_one()
    source = bind.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass('alembic_version')"
        )
    ).scalar_one()
    if source != target:
        op.execute(f'ALTER FUNCTION "{source}".{FUNCTION} SET SCHEMA "{target}"')
        for name in TYPES:
            op.execute(f'ALTER TYPE "{source}".{name} SET SCHEMA "{target}"')
        # Alembic then records this revision in the moved version table, found through the search path.
        for name in TABLES:
            op.execute(f'ALTER TABLE "{source}".{name} SET SCHEMA "{target}"')
    # current_schema() is the pinned search path's: the key of parley_server.db.locks.scoped.
    op.execute(
        FORGET_FUNCTION.format(
            config=f'SET search_path = "{target}"', key=f"hashtextextended(current_schema(), {UNSCOPED_KEY})"
        )
    )


def downgrade() -> None:
    """The tables stay in the schema, where this version's connections find them; the key is 0005's."""
    op.execute(FORGET_FUNCTION.format(config="", key=UNSCOPED_KEY))
    op.execute(f"ALTER FUNCTION {FUNCTION} RESET search_path")
