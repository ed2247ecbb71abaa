"""Alembic environment. Parley runs migrations programmatically (`parley
migrate`, and `serve` at start) on a connection it hands over in
`config.attributes["connection"]`; see parley_server.db.migrate."""

from alembic import context

from parley_server.db.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
