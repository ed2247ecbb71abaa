"""API keys and service accounts

- users.kind: `user` or `service_account`. Service accounts are rows of users
  (so conversations, usage and grants work for them unchanged) with a
  synthetic email under `.invalid` and an empty password hash; existing rows
  are people.
- api_keys: a user's or service account's keys, stored as the SHA-256 of the
  secret (unique: every call by key looks it up), with their scopes, expiry,
  last use and revocation. They go with their owner (cascade). Listed per
  owner, newest first, on (user_id, create_time, id).

Revision ID: 0007_api_keys
Revises: 0006_replicas
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_api_keys"
down_revision: str | None = "0006_replicas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER_KIND = postgresql.ENUM("user", "service_account", name="user_kind", create_type=False)
SCOPE = postgresql.ENUM("read", "write", "chat", "admin", "act_as_user", name="api_key_scope", create_type=False)


def upgrade() -> None:
    USER_KIND.create(op.get_bind())
    SCOPE.create(op.get_bind())
    op.add_column("users", sa.Column("kind", USER_KIND, server_default="user", nullable=False))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(SCOPE), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_use_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_user_id_create_time_id", "api_keys", ["user_id", "create_time", "id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_user_id_create_time_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_column("users", "kind")
    op.execute("DROP TYPE api_key_scope, user_kind")
