"""Accounts' tables: users, sessions and refresh tokens, email tokens, invites, the waitlist, the email outbox."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley_server.db.models.base import Base, now_column, pg_enum


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


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[Role] = mapped_column(pg_enum(Role, "user_role"), default=Role.USER)
    state: Mapped[UserState] = mapped_column(pg_enum(UserState, "user_state"))
    premium: Mapped[bool] = mapped_column(default=False)
    email_verified: Mapped[bool] = mapped_column(default=False)
    create_time: Mapped[datetime] = now_column()
    last_login_time: Mapped[datetime | None] = mapped_column(default=None)

    # ListUsers (newest first, keyset on create_time, id) and GetStats' new users per day.
    __table_args__ = (Index("ix_users_create_time_id", "create_time", "id"),)


class Session(Base):
    """One login: the family of refresh tokens rotated from it. Access tokens
    carry its id, so revoking it cuts them off too."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    create_time: Mapped[datetime] = now_column()
    expire_time: Mapped[datetime]
    revoke_time: Mapped[datetime | None] = mapped_column(default=None)
    client_address: Mapped[str] = mapped_column(String(100), default="")


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    # SHA-256 of the opaque token; the token itself is never stored.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    create_time: Mapped[datetime] = now_column()
    # Set when the token was exchanged; a second exchange is a reuse.
    rotate_time: Mapped[datetime | None] = mapped_column(default=None)


class EmailToken(Base):
    """Single-use tokens sent by email (verification, password reset)."""

    __tablename__ = "email_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(pg_enum(TokenPurpose, "token_purpose"))
    create_time: Mapped[datetime] = now_column()
    expire_time: Mapped[datetime]
    use_time: Mapped[datetime | None] = mapped_column(default=None)


class Invite(Base):
    """Invite codes that let a registration skip the waitlist."""

    __tablename__ = "invites"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    create_time: Mapped[datetime] = now_column()
    expire_time: Mapped[datetime]
    use_time: Mapped[datetime | None] = mapped_column(default=None)


class WaitlistEntry(Base):
    __tablename__ = "waitlist_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    # Monotonic order of arrival; positions are counted on it.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    create_time: Mapped[datetime] = now_column()
    approve_time: Mapped[datetime | None] = mapped_column(default=None)
    invite_sent: Mapped[bool] = mapped_column(default=False)

    # Positions count the pending entries ahead of one.
    __table_args__ = (Index("ix_waitlist_entries_pending_seq", "seq", postgresql_where=text("approve_time IS NULL")),)


class OutboxEmail(Base):
    """Emails kept in the database by the outbox backend (development, tests)."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = now_column()

    __table_args__ = (Index("ix_outbox_emails_recipient_id", "recipient", "id"),)
