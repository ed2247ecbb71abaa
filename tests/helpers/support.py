"""Helpers for tests: stubs, account set-up, error-detail decoding, DB snapshots."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy import select, text

from parley.admin.v1 import admin_pb2_grpc
from parley.agent.v1 import agent_pb2_grpc
from parley.agent_access.v1 import agent_access_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.chat.v1 import chat_pb2_grpc
from parley.client.errors import ParleyError
from parley.conversation.v1 import conversation_pb2_grpc
from parley_server.app import App
from parley_server.db.models import OutboxEmail

PASSWORD = "correct horse battery staple"
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Account:
    """A logged-in test user."""

    user: auth_pb2.User
    tokens: auth_pb2.TokenPair
    password: str = PASSWORD

    @property
    def md(self) -> Metadata:
        return bearer(self.tokens.access_token)


@dataclass
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    violations: dict[str, str] = field(default_factory=dict)
    retry_seconds: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def error_details(exc: grpc.aio.AioRpcError) -> ErrorDetails:
    """Decode grpc-status-details-bin (ErrorInfo, BadRequest, RetryInfo) with the client's decoder."""
    error = ParleyError.from_rpc_error(exc)
    assert error.domain, f"no ErrorInfo details on {exc.code()}: {exc.details()}"
    return ErrorDetails(
        error.code,
        error.message,
        error.reason,
        error.domain,
        error.field_violations,
        error.retry_after,
        error.metadata,
    )


async def expect_error(call: Awaitable[Any], code: grpc.StatusCode, reason: str | None = None) -> ErrorDetails:
    """Await call, assert it fails with code (and reason), return the decoded details."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        details = error_details(exc)
        assert details.code == code, f"expected {code}, got {details.code}: {details.message}"
        assert details.domain == "parley"
        assert details.reason, "ErrorInfo.reason must be set"
        if reason is not None:
            assert details.reason == reason, f"expected reason {reason}, got {details.reason}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert details.violations, "INVALID_ARGUMENT must carry field violations"
        return details
    raise AssertionError(f"expected {code}, but the call succeeded")


class Stubs:
    """Every service stub on one channel, plus shortcuts for common set-ups."""

    def __init__(self, channel: grpc.aio.Channel, app: App) -> None:
        self.app = app
        self.auth = auth_pb2_grpc.AuthServiceStub(channel)
        self.conversation = conversation_pb2_grpc.ConversationServiceStub(channel)
        self.agent_access = agent_access_pb2_grpc.AgentAccessServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.agent = agent_pb2_grpc.AgentServiceStub(channel)
        self.chat = chat_pb2_grpc.ChatServiceStub(channel)

    async def register(self, email: str, password: str = PASSWORD, **fields: str) -> auth_pb2.User:
        response = await self.auth.Register(auth_pb2.RegisterRequest(email=email, password=password, **fields))
        return response.user

    async def login(self, email: str, password: str = PASSWORD) -> Account:
        response = await self.auth.Login(auth_pb2.LoginRequest(email=email, password=password))
        return Account(response.user, response.tokens, password)

    async def emailed_token(self, email: str, subject_word: str = "Verify") -> str:
        """The token in the newest outbox email to email whose subject has subject_word."""
        async with self.app.database.transaction() as db:
            emails = (
                await db.execute(
                    select(OutboxEmail).where(OutboxEmail.recipient == email).order_by(OutboxEmail.id.desc())
                )
            ).scalars()
            for message in emails:
                if subject_word in message.subject:
                    match = re.search(r"token=([\w-]+)", message.body)
                    assert match, message.body
                    return match.group(1)
        raise AssertionError(f"no {subject_word!r} email to {email}")

    async def active_account(self, email: str = "ada@example.com", password: str = PASSWORD) -> Account:
        """Register, verify through the emailed token, log in."""
        await self.register(email, password)
        await self.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=await self.emailed_token(email)))
        return await self.login(email, password)

    async def admin_account(self, email: str = "root@example.com") -> Account:
        await self.app.auth.create_admin(email, PASSWORD)
        return await self.login(email)


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
