"""API keys bound to a client certificate identity

- api_keys.certificate_identity: a name from a client certificate (a subject
  alternative name or the subject common name). A call over mutual TLS with
  that certificate and no bearer token is authenticated as the key; the
  key's secret works only over such a connection. NULL: not bound.
- One unrevoked key per identity (a partial unique index, which is also how
  a call's identities are looked up).

Revision ID: 0008_certificate_identity
Revises: 0007_api_keys
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_certificate_identity"
down_revision: str | None = "0007_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("certificate_identity", sa.String(length=255), nullable=True))
    op.create_index(
        "uq_api_keys_certificate_identity_unrevoked",
        "api_keys",
        ["certificate_identity"],
        unique=True,
        postgresql_where=sa.text("revoke_time IS NULL AND certificate_identity IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_api_keys_certificate_identity_unrevoked", table_name="api_keys")
    op.drop_column("api_keys", "certificate_identity")
