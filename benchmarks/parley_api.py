"""Setting Parley up for a benchmark through its real interfaces: users with
`parley create-admin`, everything else with gRPC calls as any client makes them."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from parley.agent.v1 import agent_pb2, agent_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from tests.helpers.served import ServerProcess

PASSWORD = "benchmark password 123"
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def create_user(server: ServerProcess, email: str) -> None:
    """An active account (an administrator: the one kind the CLI creates)."""
    created = await asyncio.to_thread(server.parley, "create-admin", email, PARLEY_ADMIN_PASSWORD=PASSWORD)
    if created.returncode != 0:
        raise SystemExit(f"could not create the benchmark user {email}: {created.stderr}")


async def login(channel: grpc.aio.Channel, email: str) -> str:
    """A fresh access token for email."""
    response = await auth_pb2_grpc.AuthServiceStub(channel).Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    return str(response.tokens.access_token)


async def create_conversations(channel: grpc.aio.Channel, token: str, n: int) -> list[str]:
    """n conversations with the offline echo agent ("assistant"); their ids, oldest first."""
    agents = await agent_pb2_grpc.AgentServiceStub(channel).ListAgents(
        agent_pb2.ListAgentsRequest(), metadata=bearer(token)
    )
    agent_id = next(a.id for a in agents.agents if a.slug == "assistant")
    stub = conversation_pb2_grpc.ConversationServiceStub(channel)
    ids = []
    for k in range(n):
        created = await stub.CreateConversation(
            conversation_pb2.CreateConversationRequest(agent_id=agent_id, title=f"bench {k}"), metadata=bearer(token)
        )
        ids.append(created.conversation.id)
    return ids


def message_request(conversation_id: str, k: int, request_id: str = "") -> conversation_pb2.CreateMessageRequest:
    """The k-th message a benchmark stores: a user's line of a dozen words."""
    return conversation_pb2.CreateMessageRequest(
        conversation_id=conversation_id,
        role=conversation_pb2.MESSAGE_ROLE_USER,
        content=f"message {k}: a line of text about as long as a short chat message",
        request_id=request_id,
    )


async def add_messages(channel: grpc.aio.Channel, token: str, conversation_id: str, n: int) -> None:
    stub = conversation_pb2_grpc.ConversationServiceStub(channel)
    for k in range(n):
        await stub.CreateMessage(message_request(conversation_id, k, str(uuid.uuid4())), metadata=bearer(token))
