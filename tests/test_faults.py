"""PostgreSQL going away under a real `parley serve`: at most a pause for users.

Each test owns a PostgreSQL cluster (tests/pg_cluster.py), so it is the same
test on either CI database. The load runs through the Python client, as a
user's program would: unary writes with request ids and reads, and chat
streams, while the cluster is stopped and started again under them.
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from parley.agent.v1 import agent_pb2
from parley.client import Accepted, Completed, ParleyClient, ParleyError, TextDelta
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc

from parley_server.db.database import asyncpg_dsn
from tests.pg_cluster import PgCluster
from tests.served import ServerProcess

EMAIL = "fault@example.com"
PASSWORD = "correct horse battery staple"
WRITERS = 6
STREAMERS = 6
WORDS = 30
# Bounds that only catch a hang; the test never judges speed.
HANG_SECONDS = 60.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PgCluster]:
    pg = PgCluster(tmp_path / "pg").init()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@dataclass
class Load:
    """What the clients saw: acknowledged writes, finished streams, failures by code."""

    acked: dict[str, str] = field(default_factory=dict)  # request_id -> message id
    streams_completed: int = 0
    streams_resumed: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    health: list[int] = field(default_factory=list)
    envoy_flags: list[str] = field(default_factory=list)


def expected_answer(content: str) -> str:
    return "Echo: " + " ".join(content.split())


async def write_loop(client: ParleyClient, conversation_id: str, load: Load, stop: asyncio.Event) -> None:
    """CreateMessage with a request id, retried with the same id until acknowledged; ListMessages."""
    while not stop.is_set():
        request_id = str(uuid.uuid4())
        request = conversation_pb2.CreateMessageRequest(
            conversation_id=conversation_id,
            role=conversation_pb2.MESSAGE_ROLE_USER,
            content=f"note {request_id}",
            request_id=request_id,
        )
        while True:
            try:
                response = await client.conversations.CreateMessage(request)
                load.acked[request_id] = response.message.id
                break
            except ParleyError as error:
                load.codes[error.code.name] += 1
                if error.code != grpc.StatusCode.UNAVAILABLE:
                    raise
                await asyncio.sleep(error.retry_after or 0.2)
        try:
            await client.conversations.ListMessages(conversation_pb2.ListMessagesRequest(conversation_id=conversation_id))
        except ParleyError as error:
            load.codes[error.code.name] += 1
            if error.code != grpc.StatusCode.UNAVAILABLE:
                raise


async def stream_loop(client: ParleyClient, conversation_id: str, tag: str, load: Load, stop: asyncio.Event) -> None:
    """SendMessage streams; one the client gives up on is resumed to its end."""
    n = 0
    while not stop.is_set():
        n += 1
        content = " ".join(f"{tag}-{n}-{i}" for i in range(WORDS))
        text, message_id, final = "", "", None
        try:
            async for event in client.send_message(conversation_id, content):
                if isinstance(event, Accepted):
                    message_id = event.assistant_message_id
                elif isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, Completed):
                    final = event.message
        except ParleyError as error:
            load.codes[error.code.name] += 1
            if error.code != grpc.StatusCode.UNAVAILABLE:
                raise
            if not message_id:
                continue  # nothing was accepted: the user just sends again
            final = None
            while final is None:
                try:
                    async for event in client.resume(message_id, len(text)):
                        if isinstance(event, TextDelta):
                            text += event.text
                        elif isinstance(event, Completed):
                            final = event.message
                except ParleyError as again:
                    load.codes[again.code.name] += 1
                    if again.code != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.5)
            load.streams_resumed += 1
        assert final is not None, f"stream of {message_id} ended without Completed"
        assert text == expected_answer(content) == final.content
        load.streams_completed += 1


async def watch_health(addr: str, admin_addr: str, load: Load, stop: asyncio.Event) -> None:
    """The server's grpc.health.v1 status and Envoy's view of it, every 50 ms."""
    async with grpc.aio.insecure_channel(addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while not stop.is_set():
            try:
                response = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                load.health.append(response.status)
            except grpc.aio.AioRpcError:
                pass
            load.envoy_flags.append(await asyncio.to_thread(envoy_health_flags, admin_addr))
            await asyncio.sleep(0.05)


def envoy_health_flags(admin_addr: str) -> str:
    """Envoy's health flags for the gRPC server ("healthy", "/failed_active_hc", ...)."""
    with urllib.request.urlopen(f"http://{admin_addr}/clusters", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("parley_grpc::") and "::health_flags::" in line:
                return line.rsplit("::", 1)[1]
    return ""


async def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + HANG_SECONDS
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never saw: {what}"
        await asyncio.sleep(0.05)


async def test_postgresql_restart_under_load_loses_nothing(tmp_path: Path, cluster: PgCluster) -> None:
    server = ServerProcess(
        tmp_path / "serve",
        args=(),  # with Envoy, whose health check must follow the server's
        DATABASE_URL=cluster.url,
        PARLEY_ECHO_DELAY_MS="15",
        PARLEY_SWEEP_INTERVAL="1",
    )
    server.start()
    try:
        result = server.parley("create-admin", EMAIL, PARLEY_ADMIN_PASSWORD=PASSWORD)
        assert result.returncode == 0, result.stderr
        load, stop, health_stop = Load(), asyncio.Event(), asyncio.Event()
        async with ParleyClient(server.addr) as client:
            await client.login(EMAIL, PASSWORD)
            agents = await client.agents.ListAgents(agent_pb2.ListAgentsRequest())
            agent = next(a.id for a in agents.agents if a.slug == "assistant")
            conversations = [
                (await client.conversations.CreateConversation(
                    conversation_pb2.CreateConversationRequest(agent_id=agent)
                )).conversation.id
                for _ in range(WRITERS + STREAMERS)
            ]  # fmt: skip
            watcher = asyncio.create_task(watch_health(server.addr, server.env["PARLEY_ENVOY_ADMIN_ADDR"], load, health_stop))
            workers = [
                *(asyncio.create_task(write_loop(client, c, load, stop)) for c in conversations[:WRITERS]),
                *(
                    asyncio.create_task(stream_loop(client, c, f"s{i}", load, stop))
                    for i, c in enumerate(conversations[WRITERS:])
                ),
            ]
            await wait_for(lambda: load.streams_completed >= STREAMERS and len(load.acked) >= 20, "load running")
            before = len(load.acked), load.streams_completed

            await asyncio.to_thread(cluster.stop, "fast")
            await wait_for(lambda: health_pb2.HealthCheckResponse.NOT_SERVING in load.health, "health NOT_SERVING")
            await wait_for(lambda: "/failed_active_hc" in load.envoy_flags[-1:][0] if load.envoy_flags else False,
                           "Envoy marking the server unhealthy")  # fmt: skip
            # What a caller without retries gets: UNAVAILABLE, with when to retry.
            async with grpc.aio.insecure_channel(server.addr) as bare:
                stub = conversation_pb2_grpc.ConversationServiceStub(bare)
                tokens = client.tokens
                assert tokens is not None
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.ListMessages(
                        conversation_pb2.ListMessagesRequest(conversation_id=conversations[0]),
                        metadata=(("authorization", f"Bearer {tokens.access_token}"),),
                    )
            error = ParleyError.from_rpc_error(refused.value)
            assert (error.code, error.reason, error.retry_after) == (
                grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", 1.0
            )  # fmt: skip
            await asyncio.sleep(1)  # clients keep calling into the outage
            await asyncio.to_thread(cluster.start)
            await wait_for(lambda: load.health[-1] == health_pb2.HealthCheckResponse.SERVING, "health SERVING again")
            await wait_for(lambda: load.envoy_flags[-1] == "healthy", "Envoy marking the server healthy again")
            await wait_for(
                lambda: len(load.acked) > before[0] + 20 and load.streams_completed > before[1] + STREAMERS,
                "load going on after the restart",
            )
            stop.set()
            async with asyncio.timeout(HANG_SECONDS):
                await asyncio.gather(*workers)
            health_stop.set()
            await watcher

        print(
            f"acknowledged writes {len(load.acked)}, streams completed {load.streams_completed}"
            f" ({load.streams_resumed} resumed after UNAVAILABLE), errors seen {dict(load.codes)}"
        )
        assert set(load.codes) <= {"UNAVAILABLE"}, f"errors other than UNAVAILABLE: {load.codes}"
        connection = await asyncpg.connect(asyncpg_dsn(cluster.url))
        try:
            stored = {
                str(row["id"])
                for row in await connection.fetch(
                    "SELECT id FROM messages WHERE id = ANY($1::uuid[])", list(load.acked.values())
                )
            }
            streaming = await connection.fetchval("SELECT count(*) FROM messages WHERE state = 'streaming'")
            duplicates = await connection.fetchval(
                "SELECT count(*) FROM (SELECT content FROM messages WHERE content LIKE 'note %'"
                " GROUP BY content HAVING count(*) > 1) d"
            )
        finally:
            await connection.close()
        assert set(load.acked.values()) == stored, "acknowledged writes were lost"
        assert duplicates == 0, "a retried request_id created a second message"
        assert streaming == 0, "messages were left STREAMING"
        assert load.streams_completed > STREAMERS
    finally:
        server.terminate()


async def test_serve_waits_for_postgresql_that_is_down_at_start_up(tmp_path: Path, cluster: PgCluster) -> None:
    cluster.stop()
    server = ServerProcess(tmp_path / "serve", DATABASE_URL=cluster.url)
    start = asyncio.create_task(asyncio.to_thread(server.start))
    await wait_for(lambda: "waiting for PostgreSQL at" in server.log(), "the waiting log line")
    assert server.process is not None and server.process.poll() is None, "serve exited instead of waiting"
    assert not start.done()
    await asyncio.to_thread(cluster.start)
    async with asyncio.timeout(HANG_SECONDS):
        await start  # healthy: migrated and serving
    assert server.terminate() == 0
    assert "Traceback" not in server.log()


async def test_sigterm_exits_as_soon_as_the_work_is_drained(tmp_path: Path, database_url: str) -> None:
    """Streams in flight finish with their exact text, a watch (which never ends by
    itself) is told to watch again, and the process exits without waiting out a
    grace period far longer than the work."""
    grace = 600
    server = ServerProcess(
        tmp_path / "serve", DATABASE_URL=database_url, PARLEY_SHUTDOWN_GRACE=str(grace), PARLEY_ECHO_DELAY_MS="20"
    )
    server.start()
    try:
        email = f"sigterm-{uuid.uuid4().hex[:8]}@example.com"
        assert server.parley("create-admin", email, PARLEY_ADMIN_PASSWORD=PASSWORD).returncode == 0
        async with ParleyClient(server.addr) as client:
            await client.login(email, PASSWORD)
            agents = await client.agents.ListAgents(agent_pb2.ListAgentsRequest())
            agent = next(a.id for a in agents.agents if a.slug == "assistant")
            cid = (
                await client.conversations.CreateConversation(conversation_pb2.CreateConversationRequest(agent_id=agent))
            ).conversation.id
            watch_events: list[object] = []

            async def watch() -> ParleyError:
                with pytest.raises(ParleyError) as ended:
                    async for event in client.watch(cid):
                        watch_events.append(event)
                return ended.value

            async def chat(content: str) -> str:
                text = ""
                async for event in client.send_message(cid, content):
                    if isinstance(event, TextDelta):
                        text += event.text
                    elif isinstance(event, Completed):
                        assert event.message.content == text
                return text

            watcher = asyncio.create_task(watch())
            await wait_for(lambda: watch_events, "the watch's first event")
            contents = [" ".join(f"t{n}-{i}" for i in range(40)) for n in range(3)]
            chats = [asyncio.create_task(chat(c)) for c in contents]
            await wait_for(lambda: len(watch_events) > 3, "the chats under way")
            server.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            assert await asyncio.gather(*chats) == [expected_answer(c) for c in contents]
            ended = await watcher
            assert ended.code == grpc.StatusCode.UNAVAILABLE and ended.reason == "SHUTTING_DOWN"
        # Far less than the grace: a server waiting it out would fail here.
        assert await asyncio.to_thread(server.process.wait, grace / 10) == 0  # type: ignore[union-attr]
    finally:
        server.kill()
