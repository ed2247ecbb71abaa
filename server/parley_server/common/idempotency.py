"""AIP-155 request ids, shared by every create RPC that a client may retry."""

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
