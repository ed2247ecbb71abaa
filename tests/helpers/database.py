"""The test database seen directly: plain SQL, and every row at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from parley_server.app import App


async def sql(app: App, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one SQL statement in its own transaction; the rows it returns, if any."""
    async with app.database.transaction() as db:
        result = await db.execute(text(statement), params)
        return [tuple(row) for row in result.all()] if result.returns_rows else []


async def snapshot(app: App) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a failed call changed nothing."""
    async with app.database.transaction() as db:
        tables = (
            (await db.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")))
            .scalars()
            .all()
        )
        result = {}
        for table in tables:
            rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()
            result[table] = sorted(tuple(map(str, row)) for row in rows)
        return result
