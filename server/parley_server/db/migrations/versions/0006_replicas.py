"""replicas: one heartbeat row per running server process

- replicas: a process's id (chosen at start), advertised gRPC address, host
  name, pid, version, start time, last heartbeat, the time after which the
  row no longer counts as live, and its open chat streams and running
  generations. Written by every server process (admin/replicas.py), read by
  AdminService.GetSystemHealth. Rows come and go with processes; nothing else
  refers to them.

Revision ID: 0006_replicas
Revises: 0005_stats_rollup
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_replicas"
down_revision: str | None = "0005_stats_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("host", sa.String(length=300), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chat_streams", sa.Integer(), nullable=False),
        sa.Column("generations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )


def downgrade() -> None:
    op.drop_table("replicas")
