"""Accounts' tables: users and service accounts, sessions and refresh tokens, API keys, email tokens, invites,
the waitlist, the email outbox."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
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


class UserKind(enum.Enum):
    """A person, or a service account: a program's principal with no password, which
    acts only through API keys and cannot log in."""

    USER = "user"
    SERVICE_ACCOUNT = "service_account"


class Scope(enum.Enum):
    """What an API key may be used for (the proto's parley.api.v1.Scope)."""

    READ = "read"
    WRITE = "write"
    CHAT = "chat"
    ADMIN = "admin"
    ACT_AS_USER = "act_as_user"


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
    # Service accounts live in this table so that everything a user owns
    # (conversations, usage, grants) works for them unchanged. They have a
    # synthetic email under the reserved `.invalid` domain (never mailed) and
    # an empty password_hash, which no password verifies.
    kind: Mapped[UserKind] = mapped_column(
        pg_enum(UserKind, "user_kind"), default=UserKind.USER, server_default=UserKind.USER.value
    )

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


class ApiKey(Base):
    """A long-lived credential of a user or a service account, for programs."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of the secret, which has 256 bits of entropy: no slow hash is
    # needed, and every authenticated call looks the key up by it.
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # The secret's first characters, shown in lists.
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Scope]] = mapped_column(ARRAY(pg_enum(Scope, "api_key_scope")))
    create_time: Mapped[datetime] = now_column()
    expire_time: Mapped[datetime | None] = mapped_column(default=None)
    last_use_time: Mapped[datetime | None] = mapped_column(default=None)
    revoke_time: Mapped[datetime | None] = mapped_column(default=None)
    # A client certificate name (SAN or subject CN) the key is bound to: calls
    # over mutual TLS with that certificate are the key's, with no secret sent.
    certificate_identity: Mapped[str | None] = mapped_column(String(255), default=None)

    __table_args__ = (
        # An owner's keys, newest first (keyset on create_time, id).
        Index("ix_api_keys_user_id_create_time_id", "user_id", "create_time", "id"),
        # One unrevoked key per certificate identity; also the lookup of a call's identities.
        Index(
            "uq_api_keys_certificate_identity_unrevoked",
            "certificate_identity",
            unique=True,
            postgresql_where=text("revoke_time IS NULL AND certificate_identity IS NOT NULL"),
        ),
    )


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
