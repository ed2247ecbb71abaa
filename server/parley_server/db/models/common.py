"""Tables of shared mechanics: rate-limit counters and idempotency keys (request ids)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley_server.db.models.base import Base, now_column


class RateLimitCounter(Base):
    """Fixed-window counters shared by every replica (login failures, resends)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer)


class IdempotencyKey(Base):
    """AIP-155 request ids: the first resource a (user, scope, request id) created.

    The key row is inserted in the same transaction as the resource, so a
    concurrent retry blocks on the unique key until the first commits, then
    finds its resource instead of creating a second one.
    """

    __tablename__ = "idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(50), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    resource_id: Mapped[uuid.UUID]
    create_time: Mapped[datetime] = now_column()
