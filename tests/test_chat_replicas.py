"""Chat across server processes sharing one PostgreSQL.

Two real `parley serve` processes: a generation started on replica A is
resumed, watched and cancelled through replica B (events cross through
LISTEN/NOTIFY); and a replica killed with SIGKILL mid-generation leaves the
message FAILED with its partial text once another replica looks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2

from parley_server.db.models import Message, MessageState
from tests.served import ServerProcess
from tests.support import Account, Stubs
from tests.test_chat import agent_id, collect, kinds, text_of

WORDS = " ".join(f"w{i}" for i in range(80))
EXPECTED = "Echo: " + WORDS


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[list[ServerProcess]]:
    root = tmp_path_factory.mktemp("replicas")
    servers = [
        ServerProcess(root / name, DATABASE_URL=database_url, PARLEY_ECHO_DELAY_MS="25", PARLEY_JWT_SECRET="r" * 40)
        for name in ("a", "b")
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
async def two(replicas: list[ServerProcess], stubs: Stubs) -> AsyncIterator[tuple[Stubs, Stubs, Account, str]]:
    """Stubs on replica A and B, an active account (made through A) and its conversation."""
    async with grpc.aio.insecure_channel(replicas[0].addr) as ca, grpc.aio.insecure_channel(replicas[1].addr) as cb:
        a, b = Stubs(ca, stubs.app), Stubs(cb, stubs.app)
        account = await a.active_account("replica@example.com")
        created = await a.conversation.CreateConversation(
            conversation_pb2.CreateConversationRequest(agent_id=await agent_id(stubs)), metadata=account.md
        )
        yield a, b, account, created.conversation.id


async def start_on(stubs: Stubs, account: Account, cid: str, deltas: int) -> tuple[Any, list[Any]]:
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=account.md)
    seen: list[Any] = []
    while kinds(seen).count("delta") < deltas:
        seen.append(await call.read())
    return call, seen


async def test_resume_on_another_replica(two: tuple[Stubs, Stubs, Account, str]) -> None:
    a, b, account, cid = two
    call, seen = await start_on(a, account, cid, deltas=5)
    call.cancel()
    partial = text_of(seen)
    rest = await collect(
        b.chat.ResumeStream(
            chat_pb2.ResumeStreamRequest(message_id=seen[0].accepted.assistant_message_id, offset=len(partial)),
            metadata=account.md,
        )
    )
    assert kinds(rest)[-1] == "completed"
    assert partial + "".join(e.delta.text for e in rest if e.WhichOneof("event") == "delta") == EXPECTED


async def test_watch_on_another_replica(two: tuple[Stubs, Stubs, Account, str]) -> None:
    a, b, account, cid = two
    watch = b.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=account.md)
    assert (await watch.read()).conversation_updated.id == cid  # subscribed on B
    sent = await collect(
        a.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=account.md)
    )
    seen: list[Any] = []
    async with asyncio.timeout(15):
        while (event := await watch.read()) is not grpc.aio.EOF:
            seen.append(event)
            if event.WhichOneof("event") == "message_completed":
                break
    watch.cancel()
    assert kinds(seen)[:2] == ["message_created", "message_created"]
    assert "".join(e.delta.text for e in seen if e.WhichOneof("event") == "delta") == EXPECTED
    assert seen[-1].message_completed.id == sent[0].accepted.assistant_message_id


async def test_cancel_on_another_replica(two: tuple[Stubs, Stubs, Account, str]) -> None:
    a, b, account, cid = two
    call, seen = await start_on(a, account, cid, deltas=3)
    mid = seen[0].accepted.assistant_message_id
    cancelled = await b.chat.CancelGeneration(chat_pb2.CancelGenerationRequest(message_id=mid), metadata=account.md)
    assert cancelled.message.state == conversation_pb2.MESSAGE_STATE_CANCELLED
    assert 0 < len(cancelled.message.content) < len(EXPECTED)
    rest = []
    while (event := await call.read()) is not grpc.aio.EOF:
        rest.append(event)
    assert kinds(rest)[-1] == "cancelled"
    assert text_of(seen + rest) == cancelled.message.content


async def test_killed_replica_leaves_failed_message_with_partial_text(
    two: tuple[Stubs, Stubs, Account, str], tmp_path: Path, database_url: str
) -> None:
    a, _, account, cid = two
    doomed = ServerProcess(
        tmp_path / "doomed", DATABASE_URL=database_url, PARLEY_ECHO_DELAY_MS="25", PARLEY_JWT_SECRET="r" * 40
    ).start()
    try:
        async with grpc.aio.insecure_channel(doomed.addr) as channel:
            c = Stubs(channel, a.app)
            call, seen = await start_on(c, account, cid, deltas=20)
            mid = uuid.UUID(seen[0].accepted.assistant_message_id)
            await asyncio.sleep(0.3)  # at least one persistence interval
            doomed.kill()  # SIGKILL: no shutdown code runs
            call.cancel()
    finally:
        doomed.kill()
    async with a.app.database.transaction() as db:
        message = await db.get(Message, mid)
        assert message is not None and message.state is MessageState.STREAMING
        assert message.content and EXPECTED.startswith(message.content)
    # A restarted replica sweeps at start; the in-process one would too on its next sweep.
    restarted = ServerProcess(
        tmp_path / "restarted", DATABASE_URL=database_url, PARLEY_JWT_SECRET="r" * 40
    ).start()
    try:
        async with a.app.database.transaction() as db:
            message = await db.get(Message, mid)
            assert message is not None
            await db.refresh(message)
        assert message.state is MessageState.FAILED
        assert message.failure_reason and message.content and EXPECTED.startswith(message.content)
    finally:
        restarted.kill()
