"""Every service stub on one channel, with the set-ups most tests start from."""

from __future__ import annotations

import re

import grpc
from sqlalchemy import select

from parley.admin.v1 import admin_pb2_grpc
from parley.agent.v1 import agent_pb2_grpc
from parley.agent_access.v1 import agent_access_pb2_grpc
from parley.api_key.v1 import api_key_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.chat.v1 import chat_pb2_grpc
from parley.conversation.v1 import conversation_pb2_grpc
from parley.feedback.v1 import feedback_pb2_grpc
from parley.portability.v1 import portability_pb2_grpc
from parley_server.app import App
from parley_server.db.models import OutboxEmail
from tests.helpers.accounts import PASSWORD, Account


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
        self.api_keys = api_key_pb2_grpc.ApiKeyServiceStub(channel)
        self.service_accounts = api_key_pb2_grpc.ServiceAccountServiceStub(channel)
        self.feedback = feedback_pb2_grpc.FeedbackServiceStub(channel)
        self.portability = portability_pb2_grpc.PortabilityServiceStub(channel)

    async def register(self, email: str, password: str = PASSWORD, **fields: str) -> auth_pb2.User:
        response: auth_pb2.RegisterResponse = await self.auth.Register(
            auth_pb2.RegisterRequest(email=email, password=password, **fields)
        )
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

    async def emailed_subjects(self, email: str, subject_word: str = "") -> list[str]:
        """The subjects of the outbox emails to email that have subject_word, oldest first."""
        async with self.app.database.transaction() as db:
            subjects = await db.execute(
                select(OutboxEmail.subject).where(OutboxEmail.recipient == email).order_by(OutboxEmail.id)
            )
            return [subject for subject in subjects.scalars() if subject_word in subject]

    async def active_account(self, email: str = "ada@example.com", password: str = PASSWORD) -> Account:
        """Register, verify through the emailed token, log in."""
        await self.register(email, password)
        await self.auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=await self.emailed_token(email)))
        return await self.login(email, password)

    async def admin_account(self, email: str = "root@example.com") -> Account:
        await self.app.auth.create_admin(email, PASSWORD)
        return await self.login(email)
