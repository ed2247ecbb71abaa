"""AIP-155 request ids, shared by every create RPC that a client may retry.

`claim` does it in an ORM transaction; `claiming_sql` and `claimed_sql` are
the same rule as SQL, for a create that runs as one statement on the plain
asyncpg pool (CreateMessage, conversations/sql.py).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.db.models import IdempotencyKey


async def claim(db: AsyncSession, user_id: uuid.UUID, scope: str, request_id: str) -> tuple[uuid.UUID, bool]:
    """The id the new resource must get, and whether to create it.

    With an empty request_id every call creates. Otherwise the first call of
    (user, scope, request_id) claims a fresh id and returns (id, True); later
    calls, including concurrent ones (they wait on the key's unique index until
    the first transaction ends), get (that id, False) and must return the
    existing resource instead of creating one.
    """
    fresh = uuid.uuid4()
    if not request_id:
        return fresh, True
    inserted = await db.execute(
        insert(IdempotencyKey)
        .values(user_id=user_id, scope=scope, request_id=request_id, resource_id=fresh)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.resource_id)
    )
    if inserted.scalar_one_or_none() is not None:
        return fresh, True
    existing = await db.scalar(
        select(IdempotencyKey.resource_id).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.request_id == request_id,
        )
    )
    assert existing is not None
    return existing, False


def claiming_sql(
    source: str, *, user_id: str, scope: str, request_id: str, resource_id: str, conflict_fails: bool = False
) -> str:
    """An INSERT (for a CTE) claiming request_id once per row of `source`, like `claim`.

    The arguments are SQL expressions (typed bind parameters such as
    "$2::uuid"). It returns resource_id when this call claimed the id (so it
    must create the resource) and no row when the key exists (a concurrent
    first call is waited for on the key's unique index). Then the statement's
    snapshot cannot see that key: read `claimed_sql` in a new statement.
    With conflict_fails, an existing key fails the whole statement instead
    (asyncpg's UniqueViolationError on idempotency_keys), undoing whatever
    else it wrote: for a statement that cannot make its other writes depend
    on the claim.
    """
    on_conflict = "" if conflict_fails else " ON CONFLICT DO NOTHING"
    return (
        f"INSERT INTO idempotency_keys (user_id, scope, request_id, resource_id) "
        f"SELECT {user_id}, {scope}, {request_id}, {resource_id} FROM {source}{on_conflict} RETURNING resource_id"
    )


def claimed_sql(*, user_id: str, scope: str, request_id: str) -> str:
    """A scalar subquery: the id claimed for (user_id, scope, request_id), SQL expressions as above."""
    return (
        f"(SELECT resource_id FROM idempotency_keys "
        f"WHERE user_id = {user_id} AND scope = {scope} AND request_id = {request_id})"
    )
