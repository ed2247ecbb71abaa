"""Apply Alembic migrations from inside the running event loop.

Several replicas may start at once against one database: the upgrade runs
under a PostgreSQL advisory lock so exactly one of them migrates and the
others wait, then find nothing left to do. Everything, Alembic's version
table included, lives in the Database's schema (see migrations/env.py).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, func, select

from parley_server.db.database import Database
from parley_server.db.locks import MIGRATION_LOCK_KEY, scoped

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection, schema: str) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def _upgrade(connection: Connection, schema: str) -> None:
    # Named, not the session's: the schema may not exist yet.
    connection.execute(select(func.pg_advisory_xact_lock(scoped(MIGRATION_LOCK_KEY, schema))))
    command.upgrade(alembic_config(connection, schema), "head")


async def migrate(database: Database) -> None:
    """Bring the schema to the newest revision."""
    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade, database.schema)
