"""Alembic environment. Parley runs migrations programmatically (`parley
migrate`, and `serve` at start) on a connection it hands over in
`config.attributes["connection"]`, whose search path is Parley's schema
alone (`config.attributes["schema"]`; see parley_server.db.database), so
every migration creates its objects there. The schema is created here when
missing, and Alembic keeps its version table in it.

A database migrated by a Parley from before the schema has Parley's tables,
and its version table, in another schema (`public`, or wherever the role's
search path led): a *legacy* install. It is recognised by a version table
holding a revision older than the migration that moves tables into the
schema (the one whose module sets MOVES_INTO_SCHEMA). Its upgrade then runs
with the legacy schema behind Parley's on the search path and an unqualified
version table, so Alembic reads the legacy one; that migration moves the
tables, version table included, into Parley's schema, where Alembic records
the later revisions. A version table of another application (its revision
is none of Parley's), or of another Parley install that has its own schema
already, is left alone.
"""

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from parley_server.db.models import Base


def legacy_revisions(script: ScriptDirectory) -> set[str]:
    """The revisions of a Parley that kept its tables outside its own schema."""
    move = next(s for s in script.walk_revisions() if getattr(s.module, "MOVES_INTO_SCHEMA", False))
    return {s.revision for s in script.iterate_revisions(move.revision, "base")} - {move.revision}


def legacy_schema(connection: Connection, schema: str, revisions: set[str]) -> str | None:
    """The schema of a legacy install in this database, if there is one and Parley's schema is new."""
    found = (
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = 'alembic_version' AND c.relkind IN ('r', 'p') AND n.nspname {} :schema"
        " AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1"
    )
    if connection.execute(text(found.format("=")), {"schema": schema}).first() is not None:
        return None
    legacy = [
        other
        for other in connection.execute(text(found.format("<>")), {"schema": schema}).scalars()
        if connection.execute(text(f'SELECT version_num FROM "{other}".alembic_version')).scalar() in revisions
    ]
    if len(legacy) > 1:
        raise RuntimeError(f"Parley's tables are in several schemas ({', '.join(legacy)}); keep one")
    return legacy[0] if legacy else None


connection: Connection = context.config.attributes["connection"]
schema: str = context.config.attributes["schema"]
# Looked up first: CREATE SCHEMA IF NOT EXISTS needs the right to create
# schemas even when this one exists, which a role given its schema lacks.
if connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}).first() is None:
    connection.execute(text(f'CREATE SCHEMA "{schema}"'))
legacy = legacy_schema(connection, schema, legacy_revisions(context.script))
if legacy is not None:
    # Until the end of this transaction: the legacy tables, and their version table, are found.
    connection.execute(text(f'SET LOCAL search_path TO "{schema}", "{legacy}"'))
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    version_table_schema=None if legacy else schema,
)
with context.begin_transaction():
    context.run_migrations()
