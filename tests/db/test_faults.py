"""PostgreSQL going away under a real `parley serve`: at most a pause for users.

Each test owns a PostgreSQL cluster (tests/helpers/pg_cluster.py), so it is the same
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
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from parley.agent.v1 import agent_pb2
from parley.client import Completed, ParleyClient, ParleyError, TextDelta
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from parley_server.db.database import asyncpg_dsn
from tests.helpers.accounts import PASSWORD
from tests.helpers.fault_load import Audit, Load, audit, expected_answer, stream_loop, write_loop
from tests.helpers.health import aio_health_stub
from tests.helpers.pg_cluster import PgCluster
from tests.helpers.served import ServerProcess

EMAIL = "fault@example.com"
WRITERS = 6
STREAMERS = 6
WORDS = 30
# Bounds that only catch a hang; the test never judges speed.
HANG_SECONDS = 60.0
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Health:
    """The server's grpc.health.v1 answers and Envoy's health flags for it, in order."""

    server: list[int] = field(default_factory=lambda: [health_pb2.HealthCheckResponse.UNKNOWN])
    envoy: list[str] = field(default_factory=lambda: [""])


async def watch_health(addr: str, admin_addr: str, health: Health, stop: asyncio.Event) -> None:
    """The server's grpc.health.v1 status and Envoy's view of it, every 50 ms."""
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = aio_health_stub(channel)
        while not stop.is_set():
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                health.server.append(response.status)
            except grpc.aio.AioRpcError:
                pass
            health.envoy.append(await asyncio.to_thread(envoy_health_flags, admin_addr))
            await asyncio.sleep(0.05)


def envoy_health_flags(admin_addr: str) -> str:
    """Envoy's health flags for the gRPC server ("healthy", "/failed_active_hc", ...)."""
    with urllib.request.urlopen(f"http://{admin_addr}/clusters", timeout=2) as response:
        clusters: bytes = response.read()
        for line in clusters.decode().splitlines():
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
        PARLEY_SWEEP_INTERVAL_SECONDS="1",
    )
    # Another replica that sweeps every second: a restart frees every replica's
    # lock, and it must not take the server's answers for orphans meanwhile.
    bystander = ServerProcess(tmp_path / "bystander", DATABASE_URL=cluster.url, PARLEY_SWEEP_INTERVAL_SECONDS="1")
    server.start()
    try:
        bystander.start()
        result = server.parley("create-admin", EMAIL, PARLEY_ADMIN_PASSWORD=PASSWORD)
        assert result.returncode == 0, result.stderr
        load, health, stop, health_stop = Load(), Health(), asyncio.Event(), asyncio.Event()
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
            admin_addr = server.env["PARLEY_ENVOY_ADMIN_ADDR"]
            watcher = asyncio.create_task(watch_health(server.addr, admin_addr, health, health_stop))
            workers = [
                *(asyncio.create_task(write_loop(client, c, load, stop)) for c in conversations[:WRITERS]),
                *(
                    asyncio.create_task(stream_loop(client, c, f"s{i}", WORDS, load, stop))
                    for i, c in enumerate(conversations[WRITERS:])
                ),
            ]
            await wait_for(lambda: load.streams_completed >= STREAMERS and len(load.acked) >= 20, "load running")
            before = len(load.acked), load.streams_completed

            await asyncio.to_thread(cluster.stop, "fast")
            await wait_for(lambda: health.server[-1] == NOT_SERVING, "health NOT_SERVING")
            await wait_for(lambda: "/failed_active_hc" in health.envoy[-1], "Envoy marking the server unhealthy")
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
            await wait_for(lambda: health.server[-1] == SERVING, "health SERVING again")
            await wait_for(lambda: health.envoy[-1] == "healthy", "Envoy marking the server healthy again")
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
        assert not load.wrong_text, f"streams that did not end with the exact text: {load.wrong_text[:3]}"
        assert await audit(asyncpg_dsn(cluster.url), load) == Audit(lost=0, duplicated=0, streaming=0)
        assert load.streams_completed > STREAMERS
    finally:
        bystander.kill()
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
        tmp_path / "serve",
        DATABASE_URL=database_url,
        PARLEY_SHUTDOWN_GRACE_SECONDS=str(grace),
        PARLEY_ECHO_DELAY_MS="20",
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
                await client.conversations.CreateConversation(
                    conversation_pb2.CreateConversationRequest(agent_id=agent)
                )
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
