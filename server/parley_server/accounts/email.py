"""The one email module: what Parley sends, and the two ways it is delivered.

- `OutboxSender` stores each email in the `outbox_emails` table (the default in
  development and tests; `parley outbox` prints them).
- `SmtpSender` delivers through an SMTP relay with aiosmtplib, in the
  background: an RPC never waits for (or reveals through its timing) the
  relay's answer, and a failed delivery is logged, not turned into an error
  about an account the caller may not own.

Emails are sent after the transaction that caused them has committed, so no
email goes out for a change that was rolled back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from parley_server.db.database import Database
from parley_server.db.models import OutboxEmail
from parley_server.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Email:
    recipient: str
    subject: str
    body: str


class EmailSender(Protocol):
    async def send(self, email: Email) -> None: ...

    async def aclose(self) -> None: ...


class OutboxSender:
    """Keeps emails in the database instead of sending them."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def send(self, email: Email) -> None:
        async with self._db.transaction() as db:
            db.add(OutboxEmail(recipient=email.recipient, subject=email.subject, body=email.body))

    async def aclose(self) -> None:
        return None


class SmtpSender:
    """Sends through SMTP in background tasks; `aclose` waits for those in flight."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pending: set[asyncio.Task[None]] = set()

    async def send(self, email: Email) -> None:
        task = asyncio.create_task(self._deliver(email))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, email: Email) -> None:
        message = EmailMessage()
        message["From"] = self._settings.email_from
        message["To"] = email.recipient
        message["Subject"] = email.subject
        message.set_content(email.body)
        s = self._settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                timeout=s.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError):
            log.exception("email to %s could not be delivered", email.recipient)

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class EmailTemplates:
    """The texts of Parley's emails; links point at the public URL."""

    def __init__(self, public_url: str) -> None:
        self._url = public_url

    def verification(self, recipient: str, token: str) -> Email:
        return Email(
            recipient,
            "Verify your Parley email address",
            "Welcome to Parley!\n\n"
            f"Confirm your email address: {self._url}/verify?token={token}\n\n"
            f"Or call VerifyEmail with this token: {token}\n\n"
            "The link works once and expires in 48 hours.\n",
        )

    def password_reset(self, recipient: str, token: str) -> Email:
        return Email(
            recipient,
            "Reset your Parley password",
            "Someone asked to reset the password of this Parley account.\n\n"
            f"Choose a new password: {self._url}/reset-password?token={token}\n\n"
            f"Or call ResetPassword with this token: {token}\n\n"
            "The link works once and expires in 1 hour. If you did not ask, ignore this email.\n",
        )

    def invite(self, recipient: str, code: str) -> Email:
        return Email(
            recipient,
            "You are invited to Parley",
            "Your place on the Parley waitlist has come up.\n\n"
            f"Register with this invite code: {code}\n\n"
            "The code works once and expires in 14 days.\n",
        )

    def account_activated(self, recipient: str) -> Email:
        return Email(
            recipient,
            "Your Parley account is active",
            f"Your place on the waitlist has come up: log in at {self._url}.\n",
        )
