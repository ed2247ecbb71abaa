"""SQLAlchemy models: the tables PostgreSQL keeps for Parley.

Foreign keys to users cascade on delete so that deleting an account removes
everything it owns in one statement, whichever code path deletes it.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Identity,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base; naming convention keeps migration constraint names stable."""

    type_annotation_map = {datetime: DateTime(timezone=True), uuid.UUID: UUID(as_uuid=True)}


Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Role(enum.Enum):
    USER = "user"
    ADMIN = "admin"


class UserState(enum.Enum):
    PENDING_VERIFICATION = "pending_verification"
    ACTIVE = "active"
    WAITLISTED = "waitlisted"
    DISABLED = "disabled"


class TokenPurpose(enum.Enum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


def _now() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.USER)
    state: Mapped[UserState] = mapped_column(_enum(UserState, "user_state"))
    premium: Mapped[bool] = mapped_column(default=False)
    email_verified: Mapped[bool] = mapped_column(default=False)
    create_time: Mapped[datetime] = _now()
    last_login_time: Mapped[datetime | None] = mapped_column(default=None)


class Session(Base):
    """One login: the family of refresh tokens rotated from it. Access tokens
    carry its id, so revoking it cuts them off too."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    create_time: Mapped[datetime] = _now()
    expire_time: Mapped[datetime]
    revoke_time: Mapped[datetime | None] = mapped_column(default=None)
    client_address: Mapped[str] = mapped_column(String(100), default="")


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    # SHA-256 of the opaque token; the token itself is never stored.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    create_time: Mapped[datetime] = _now()
    # Set when the token was exchanged; a second exchange is a reuse.
    rotate_time: Mapped[datetime | None] = mapped_column(default=None)


class EmailToken(Base):
    """Single-use tokens sent by email (verification, password reset)."""

    __tablename__ = "email_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(_enum(TokenPurpose, "token_purpose"))
    create_time: Mapped[datetime] = _now()
    expire_time: Mapped[datetime]
    use_time: Mapped[datetime | None] = mapped_column(default=None)


class Invite(Base):
    """Invite codes that let a registration skip the waitlist."""

    __tablename__ = "invites"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    create_time: Mapped[datetime] = _now()
    expire_time: Mapped[datetime]
    use_time: Mapped[datetime | None] = mapped_column(default=None)


class WaitlistEntry(Base):
    __tablename__ = "waitlist_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    # Monotonic order of arrival; positions are counted on it.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    create_time: Mapped[datetime] = _now()
    approve_time: Mapped[datetime | None] = mapped_column(default=None)
    invite_sent: Mapped[bool] = mapped_column(default=False)


class RateLimitCounter(Base):
    """Fixed-window counters shared by every replica (login failures, resends)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer)


class OutboxEmail(Base):
    """Emails kept in the database by the outbox backend (development, tests)."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_outbox_emails_recipient_id", "recipient", "id"),)
