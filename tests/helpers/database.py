"""The test database seen directly: plain SQL, and every row at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, text

from parley_server.app import App


async def sql(app: App, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one SQL statement in its own transaction; the rows it returns, if any."""
    async with app.database.transaction() as db:
        result = await db.execute(text(statement), params)
        assert isinstance(result, CursorResult)  # a textual statement's result: a cursor's
        return [tuple(row) for row in result.all()] if result.returns_rows else []


async def snapshot(app: App) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a failed call changed nothing; except `replicas`,
    where each server process rewrites its own row every few seconds, whatever the calls do."""
    tables = (
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'replicas' ORDER BY 1"
    )
    async with app.database.transaction() as db:
        result = {}
        for table in (await db.execute(text(tables))).scalars().all():
            rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()
            result[table] = sorted(tuple(map(str, row)) for row in rows)
        return result


async def lock_waiters(app: App) -> int:
    """Backends of the test database waiting for a lock (on the engine: the plain pool may be all waiting)."""
    async with app.database.transaction() as db:
        waiting = await db.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)
