"""GetSystemHealth's cluster view, with real `parley serve` processes on the suite's database.

Replica A is one process, replica B is `serve --workers 2` (two processes on
one port); the suite's own in-process server is a replica too. Every one of
them must list every live process with its counts; a process that exits
cleanly leaves the list at once, one that is SIGKILLed once its heartbeat is
stale. Heartbeats come every second here, and every wait polls until a
deadline that only catches a hang.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest
from sqlalchemy import text

from parley.admin.v1 import admin_pb2 as pb
from parley.chat.v1 import chat_pb2
from parley_server import __version__
from parley_server.db.database import asyncpg_dsn, schema_settings
from parley_server.settings import DEFAULT_DB_SCHEMA
from tests.helpers.accounts import Account
from tests.helpers.chat import kinds, read_rest
from tests.helpers.conversations import new_conversation
from tests.helpers.in_process import TEST_JWT_SECRET
from tests.helpers.pg_cluster import PgCluster
from tests.helpers.repo import REPO_ROOT
from tests.helpers.served import BIN, ServerProcess, free_port
from tests.helpers.stubs import Stubs

T = TypeVar("T")
# Only catches a hang; no assertion depends on how fast anything is.
HANG_SECONDS = 60.0
WORDS = " ".join(f"w{i}" for i in range(400))  # 20 s of echo at 50 ms a word: cancelled long before


def replica(root: Path, database_url: str, *args: str) -> ServerProcess:
    """A `parley serve` on database_url that beats every second and accepts the suite's tokens."""
    return ServerProcess(
        root,
        args=("--no-envoy", *args),
        DATABASE_URL=database_url,
        PARLEY_JWT_SECRET=TEST_JWT_SECRET,
        PARLEY_HEARTBEAT_INTERVAL_SECONDS="1",
        PARLEY_ECHO_DELAY_MS="50",
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    root = tmp_path_factory.mktemp("cluster")
    a, b = replica(root / "a", database_url), replica(root / "b", database_url, "--workers", "2")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        for server in (a, b):
            if server.process is not None and server.process.poll() is None:
                server.terminate()


@pytest.fixture
async def views(pair: tuple[ServerProcess, ServerProcess], stubs: Stubs) -> AsyncIterator[tuple[Stubs, Stubs]]:
    """Stubs on replica A and on replica B (one connection: always the same worker)."""
    a, b = pair
    async with grpc.aio.insecure_channel(a.addr) as ca, grpc.aio.insecure_channel(b.addr) as cb:
        yield Stubs(ca, stubs.app), Stubs(cb, stubs.app)


async def eventually(fetch: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
    """fetch() until ok() holds of its value; fail with the last value after HANG_SECONDS."""
    deadline = time.monotonic() + HANG_SECONDS
    while True:
        value = await fetch()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"never saw {what}; last: {value}"
        await asyncio.sleep(0.1)


def health_of(stubs: Stubs, admin: Account) -> Callable[[], Awaitable[pb.GetSystemHealthResponse]]:
    return lambda: stubs.admin.GetSystemHealth(pb.GetSystemHealthRequest(), metadata=admin.md)


def at(health: pb.GetSystemHealthResponse, address: str) -> list[pb.Replica]:
    return [r for r in health.replicas if r.address == address]


def current(health: pb.GetSystemHealthResponse) -> pb.Replica:
    (own,) = [r for r in health.replicas if r.current]
    return own


def by_id(health: pb.GetSystemHealthResponse, replica_id: str) -> pb.Replica | None:
    return next((r for r in health.replicas if r.id == replica_id), None)


def lists_pair(a: ServerProcess, b: ServerProcess) -> Callable[[pb.GetSystemHealthResponse], bool]:
    """Whether a response lists A once and both workers of B (whose rows the test's truncation may have
    just removed until their next beat)."""
    return lambda health: len(at(health, a.addr)) == 1 and len(at(health, b.addr)) == 2


async def test_every_replica_lists_every_live_process(
    pair: tuple[ServerProcess, ServerProcess], views: tuple[Stubs, Stubs], stubs: Stubs
) -> None:
    a, b = pair
    on_a, on_b = views
    admin = await stubs.admin_account()
    seen = {
        name: await eventually(health_of(view, admin), lists_pair(a, b), f"A and B's two workers from {name}")
        for name, view in (("A", on_a), ("B", on_b), ("the suite's server", stubs))
    }
    (a_entry,) = at(seen["A"], a.addr)
    workers = at(seen["B"], b.addr)
    assert b.process is not None and a.process is not None
    assert a_entry.current and a_entry.pid == a.process.pid
    # B's entries are its two workers (forked children of the parent, which serves nothing itself).
    assert len({w.pid for w in workers}) == 2 and b.process.pid not in {w.pid for w in workers}
    assert current(seen["B"]).address == b.addr
    for name, health in seen.items():
        assert sum(r.current for r in health.replicas) == 1, name
        # Top-level fields are the answering replica's.
        own = current(health)
        assert (own.version, own.active_chat_streams, own.active_generations) == (
            health.version,
            health.active_chat_streams,
            health.active_generations,
        )
        for entry in [*at(health, a.addr), *at(health, b.addr)]:
            assert (entry.version, entry.host) == (__version__, socket.gethostname())
            assert entry.start_time.ToDatetime() <= entry.heartbeat_time.ToDatetime()
        # Every view names the same processes by the same ids.
        assert {r.id for r in [*at(health, a.addr), *at(health, b.addr)]} == {a_entry.id, *(w.id for w in workers)}
    assert current(seen["the suite's server"]).id not in {a_entry.id, *(w.id for w in workers)}


async def test_counts_of_streams_and_generations_reach_the_other_replicas(
    pair: tuple[ServerProcess, ServerProcess], views: tuple[Stubs, Stubs], stubs: Stubs
) -> None:
    on_a, on_b = views
    admin = await stubs.admin_account()
    conversation = await new_conversation(on_a, admin)
    b_view = await eventually(health_of(on_b, admin), lists_pair(*pair), "A and B from B")
    a_id, b_worker = at(b_view, pair[0].addr)[0].id, current(b_view)
    assert (b_worker.active_chat_streams, b_worker.active_generations) == (0, 0)

    # A watch on A, and a long generation on B's worker (a SendMessage stream, too).
    watch = on_a.chat.WatchConversation(
        chat_pb2.WatchConversationRequest(conversation_id=conversation.id), metadata=admin.md
    )
    await watch.read()  # the first event: the watch is open
    assert current(await health_of(on_a, admin)()).active_chat_streams == 1
    send = on_b.chat.SendMessage(
        chat_pb2.SendMessageRequest(conversation_id=conversation.id, content=WORDS), metadata=admin.md
    )
    events: list[Any] = []
    while "delta" not in kinds(events):
        events.append(await send.read())
    own = current(await health_of(on_b, admin)())
    assert (own.id, own.active_chat_streams, own.active_generations) == (b_worker.id, 1, 1)

    def shows(replica_id: str, streams: int, generations: int) -> Callable[[pb.GetSystemHealthResponse], bool]:
        def ok(health: pb.GetSystemHealthResponse) -> bool:
            entry = by_id(health, replica_id)
            return entry is not None and (entry.active_chat_streams, entry.active_generations) == (
                streams,
                generations,
            )

        return ok

    await eventually(health_of(on_a, admin), shows(b_worker.id, 1, 1), "B's stream and generation from A")
    await eventually(health_of(on_b, admin), shows(a_id, 1, 0), "A's watch from B")
    await eventually(health_of(stubs, admin), shows(b_worker.id, 1, 1), "B's generation from the suite's server")

    message_id = events[0].accepted.assistant_message_id
    await on_b.chat.CancelGeneration(chat_pb2.CancelGenerationRequest(message_id=message_id), metadata=admin.md)
    assert "cancelled" in kinds(await read_rest(send))
    watch.cancel()
    await eventually(health_of(on_a, admin), shows(b_worker.id, 0, 0), "B idle again, from A")
    await eventually(health_of(on_b, admin), shows(a_id, 0, 0), "A idle again, from B")


async def test_a_stopped_replica_leaves_at_once_a_killed_one_once_stale(
    tmp_path: Path, database_url: str, stubs: Stubs
) -> None:
    admin = await stubs.admin_account()
    # `serve --addr` overrides PARLEY_GRPC_ADDR, for the listing too.
    addr = f"127.0.0.1:{free_port()}"
    stopped = replica(tmp_path / "stopped", database_url, "--addr", addr)
    stopped.addr = addr
    killed = replica(tmp_path / "killed", database_url)
    try:
        await asyncio.gather(asyncio.to_thread(stopped.start), asyncio.to_thread(killed.start))
        health = health_of(stubs, admin)
        await eventually(health, lambda h: bool(at(h, stopped.addr) and at(h, killed.addr)), "both replicas")

        assert stopped.terminate() == 0
        after_stop = await health()
        assert not at(after_stop, stopped.addr) and at(after_stop, killed.addr)
        assert await rows_at(stubs, stopped.addr) == 0

        assert killed.process is not None
        killed.kill()  # SIGKILL: no chance to delete its row
        killed.process.wait()
        await eventually(health, lambda h: not at(h, killed.addr), "the killed replica gone from the list")
        # ...and, at a later heartbeat of a live replica (the suite's server), from the table.
        await eventually(lambda: rows_at(stubs, killed.addr), lambda n: n == 0, "the killed replica's row pruned")
    finally:
        stopped.kill()
        killed.kill()


async def rows_at(stubs: Stubs, address: str) -> int:
    async with stubs.app.database.transaction() as db:
        count = await db.scalar(text("SELECT count(*) FROM replicas WHERE address = :a"), {"a": address})
    return int(count or 0)


async def test_heartbeat_survives_a_database_restart(tmp_path: Path) -> None:
    cluster = PgCluster(tmp_path / "pg").init()
    cluster.start()
    server = replica(tmp_path / "serve", cluster.url)
    try:
        server.start()

        async def last_beat() -> tuple[Any, Any]:
            connection = await asyncpg.connect(
                asyncpg_dsn(cluster.url), server_settings=schema_settings(DEFAULT_DB_SCHEMA)
            )
            try:
                row = await connection.fetchrow(
                    "SELECT (SELECT heartbeat_time FROM replicas WHERE address = $1), now()", server.addr
                )
            finally:
                await connection.close()
            assert row is not None
            return row[0], row[1]

        assert (await last_beat())[0] is not None
        await asyncio.to_thread(cluster.stop, "fast")

        async def log() -> str:
            return server.log()

        await eventually(log, lambda text: "heartbeat failed" in text, "a failed beat logged")
        await asyncio.to_thread(cluster.start)
        _, restarted = await last_beat()
        await eventually(last_beat, lambda row: row[0] is not None and row[0] > restarted, "a beat after the restart")
        assert server.terminate() == 0
        assert (await last_beat())[0] is None  # the clean exit deleted the row
    finally:
        server.kill()
        cluster.destroy()


async def test_readme_cluster_view_block_runs(pair: tuple[ServerProcess, ServerProcess], stubs: Stubs) -> None:
    """The README's GetSystemHealth block, run verbatim by bash against replica A."""
    a, b = pair
    # The test's truncation removed every row; each replica's next beat brings its own back.
    await eventually(health_of(stubs, await stubs.admin_account()), lists_pair(a, b), "A and B's two workers")
    block = (REPO_ROOT / "README.md").read_text().split("<!-- cluster-view")[1].split("```sh\n", 1)[1]
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", block.split("```", 1)[0]],
        env={**a.env, "PATH": f"{BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(f'"address": "{a.addr}"') == 1
    assert result.stdout.count(f'"address": "{b.addr}"') == 2
    assert result.stdout.count('"current": true') == 1
