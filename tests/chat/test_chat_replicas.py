"""Chat across server processes sharing one PostgreSQL.

Two real `parley serve` processes: a generation started on replica A is
resumed, watched and cancelled through replica B (events cross through
LISTEN/NOTIFY); and a replica killed with SIGKILL mid-generation leaves the
message FAILED with its partial text once another replica looks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2
from parley_server.db.database import asyncpg_dsn
from parley_server.db.models import Message, MessageState
from parley_server.events.bus import INTEREST_REFRESH_SECONDS, EventBus
from parley_server.events.schema import ConversationChanged, Event, Finished, MessageCreated, TextAppended
from tests.helpers.accounts import Account
from tests.helpers.chat import collect, kinds, text_of
from tests.helpers.conversations import new_conversation
from tests.helpers.served import ServerProcess
from tests.helpers.stubs import Stubs

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
        yield a, b, account, (await new_conversation(a, account)).id


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


async def test_a_watch_recovers_what_a_lost_listen_connection_dropped(
    two: tuple[Stubs, Stubs, Account, str], database_url: str
) -> None:
    """Events from replica A reach a watch on B through B's LISTEN connection: cut it mid-answer."""
    a, b, account, cid = two
    watch = b.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=account.md)
    assert (await watch.read()).conversation_updated.id == cid
    call, seen = await start_on(a, account, cid, deltas=3)
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        cut = await listener.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
        )
    finally:
        await listener.close()
    assert cut >= 2, "A's and B's LISTEN connections"
    events: list[Any] = []
    async with asyncio.timeout(20):
        while not events or kinds(events)[-1] != "message_completed":
            events.append(await watch.read())
    watch.cancel()
    call.cancel()
    answer_id = seen[0].accepted.assistant_message_id
    text = ""
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "message_created" and event.message_created.id == answer_id:
            text = event.message_created.content
        elif kind == "delta":
            assert event.delta.message_id == answer_id and event.delta.offset == len(text), kinds(events)
            text += event.delta.text
    assert text == EXPECTED == events[-1].message_completed.content


async def test_subscribers_resync_after_listening_resumes_not_before(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What another replica publishes while the LISTEN connection is down is lost: the resync
    signal (None) must come once listening has resumed, or the outage itself goes unnoticed."""
    dsn = asyncpg_dsn(stubs.app.database.url)
    schema = stubs.app.database.schema
    sender, receiver = EventBus(dsn, schema=schema), EventBus(dsn, schema=schema)
    await sender.start()
    await receiver.start()
    listening_again = asyncio.Event()
    connect = receiver._connect_listener

    async def slow_reconnect() -> None:  # the database is unreachable for a moment
        await listening_again.wait()
        await connect()

    monkeypatch.setattr(receiver, "_connect_listener", slow_reconnect)
    cid = uuid.uuid4()
    try:
        async with receiver.subscribe(cid, remote_deltas=True) as subscription:
            admin = await asyncpg.connect(dsn)
            try:  # the backend holding the receiver's replica lock is its LISTEN connection
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND ((classid::bigint << 32) | objid::bigint) = $1",
                    receiver.replica_key,
                )
            finally:
                await admin.close()
            async with asyncio.timeout(5):
                while receiver._listen_conn is not None and not receiver._listen_conn.is_closed():
                    await asyncio.sleep(0.01)
            sender.publish(ConversationChanged(cid))  # lost: nobody listens
            await asyncio.sleep(0.3)  # past the sender's flush
            assert subscription.pending() == [], "a resync now would miss what is published until listening resumes"
            listening_again.set()
            async with asyncio.timeout(5):
                assert await subscription.next() is None
    finally:
        listening_again.set()
        await receiver.stop()
        await sender.stop()


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
        tmp_path / "doomed",
        DATABASE_URL=database_url,
        PARLEY_ECHO_DELAY_MS="25",
        PARLEY_STREAM_FRAME_MS="0",  # a delta per word: the 20th comes mid-answer
        PARLEY_JWT_SECRET="r" * 40,
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
    restarted = ServerProcess(tmp_path / "restarted", DATABASE_URL=database_url, PARLEY_JWT_SECRET="r" * 40).start()
    try:
        async with a.app.database.transaction() as db:
            message = await db.get(Message, mid)
            assert message is not None
            await db.refresh(message)
        assert message.state is MessageState.FAILED
        assert message.failure_reason and message.content and EXPECTED.startswith(message.content)
    finally:
        restarted.kill()


async def test_followers_only_events_cross_to_replicas_that_follow_them_and_no_others(stubs: Stubs) -> None:
    """With nobody on another replica following a conversation, its deltas, new
    messages and changes cost PostgreSQL nothing (an answer's end always
    travels); once a replica follows it, they reach it. The replica that left
    some unsent acknowledges the follower, whose subscription re-reads stored state."""
    dsn = asyncpg_dsn(stubs.app.database.url)
    schema = stubs.app.database.schema
    owner, other = EventBus(dsn, schema=schema), EventBus(dsn, schema=schema)
    await owner.start()
    await other.start()
    spy = await asyncpg.connect(dsn)
    kinds_sent: list[str] = []
    await spy.add_listener(owner.channel, lambda *args: kinds_sent.extend(e["t"] for e in json.loads(args[3])["e"]))
    cid, mid = uuid.uuid4(), uuid.uuid4()
    followers_only: list[Event] = [MessageCreated(cid, mid), TextAppended(cid, mid, 0, "a"), ConversationChanged(cid)]
    finished = Finished(cid, mid, MessageState.COMPLETE)
    try:
        async with other.subscribe(cid, remote_deltas=False) as lifecycle:
            for event in [*followers_only, finished]:
                owner.publish(event)
            async with asyncio.timeout(5):
                assert await lifecycle.next() == finished
            await asyncio.sleep(0.3)  # past the owner's next flushes
            assert lifecycle.pending() == []
            assert kinds_sent == ["finished"]
            async with other.subscribe(cid, remote_deltas=True) as follower:
                async with asyncio.timeout(5):  # the owner heard of the follower and acknowledged it
                    assert await follower.next() is None
                for event in followers_only:
                    owner.publish(event)
                async with asyncio.timeout(5):
                    assert [await follower.next() for _ in followers_only] == followers_only
    finally:
        await spy.close()
        await other.stop()
        await owner.stop()


async def test_a_replica_that_starts_hears_of_followers_at_once(stubs: Stubs) -> None:
    """A replica that starts (or listens again) asks the others to announce
    what they follow, rather than leave followed conversations' events unsent
    until their next refresh (INTEREST_REFRESH_SECONDS)."""
    dsn = asyncpg_dsn(stubs.app.database.url)
    schema = stubs.app.database.schema
    other = EventBus(dsn, schema=schema)
    await other.start()
    cid, mid = uuid.uuid4(), uuid.uuid4()
    try:
        async with other.subscribe(cid, remote_deltas=True) as follower:
            await asyncio.sleep(0.3)  # its announcement went out, to nobody
            late = EventBus(dsn, schema=schema)
            await late.start()
            try:
                async with asyncio.timeout(INTEREST_REFRESH_SECONDS / 2):
                    while not follower.pending():
                        late.publish(ConversationChanged(cid))
                        await asyncio.sleep(0.05)
                late.publish(MessageCreated(cid, mid))
                async with asyncio.timeout(5):
                    while (event := await follower.next()) != MessageCreated(cid, mid):
                        assert event in (None, ConversationChanged(cid))
            finally:
                await late.stop()
    finally:
        await other.stop()


@pytest.mark.parametrize("request_id", ["", "create-once"])
async def test_a_message_created_on_one_replica_reaches_a_watch_on_the_other(
    two: tuple[Stubs, Stubs, Account, str], request_id: str
) -> None:
    """CreateMessage's events reach the other replica through the bus (LISTEN/NOTIFY)."""
    a, b, account, cid = two
    watches = [
        stubs.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=account.md)
        for stubs in (a, b)
    ]
    for watch in watches:
        assert (await watch.read()).conversation_updated.id == cid
    created = await a.conversation.CreateMessage(
        conversation_pb2.CreateMessageRequest(
            conversation_id=cid,
            role=conversation_pb2.MESSAGE_ROLE_USER,
            content=f"hello {request_id}",
            request_id=f"{request_id}-{uuid.uuid4()}" if request_id else "",
        ),
        metadata=account.md,
    )
    for watch in watches:  # the replica that stored it, and the other
        async with asyncio.timeout(10):
            event = await watch.read()
            while event.WhichOneof("event") != "message_created":
                event = await watch.read()
        assert event.message_created == created.message
        watch.cancel()
