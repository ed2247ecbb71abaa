#!/usr/bin/env python3
"""Benchmark concurrent chat streams against a real `parley serve` process.

Starts a server process on its own database (DATABASE_URL, or a fresh
embedded PostgreSQL in a temporary directory), opens N concurrent SendMessage
streams with the offline echo provider, and prints:

- whether every stream completed, and tokens lost (expected vs received text);
- tokens/s delivered to clients (run as --clients processes, 2 by default,
  so that one client's event loop does not limit what the server shows);
- time from each call to its `accepted` event;
- per-token lateness added by the server: echo emits word k at start + k *
  delay, so a delta carrying words up to k is due then; lateness is its
  arrival minus that due time, measured from the stream's earliest delta;
- the server's CPU per exchange, its peak RSS, and RSS per open stream:
  (RSS with all streams open - RSS before) / N.

    python scripts/bench_chat.py --streams 100 1000 --words 200
    python scripts/bench_chat.py --streams 1000 --workers 2   # one process per core
    python scripts/bench_chat.py --quick          # CI: small and fast
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from parley.agent.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from parley.auth.v1 import auth_pb2, auth_pb2_grpc  # noqa: E402
from parley.chat.v1 import chat_pb2, chat_pb2_grpc  # noqa: E402
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc  # noqa: E402
from tests.helpers.served import ServerProcess  # noqa: E402

PASSWORD = "benchmark password 123"
# Streams per connection: a real deployment's clients are many connections,
# and HTTP/2 caps concurrent streams per connection.
STREAMS_PER_CHANNEL = 50

Metadata = tuple[tuple[str, str], ...]


@dataclass
class StreamResult:
    completed: bool = False
    text: str = ""
    # Seconds from the call's start to its `accepted` event.
    accepted_after: float | None = None
    # (arrival time, words received so far) per delta; a delta may carry
    # several words when the server coalesced a replay.
    arrivals: list[tuple[float, int]] = field(default_factory=list)


def serving_pids(pid: int) -> list[int]:
    """The processes that serve: `parley serve` itself, or its forked workers
    (children with the same command line; the embedded PostgreSQL's are not)."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if Path(f"/proc/{c}/cmdline").read_bytes() == command] or [pid]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kib(pids: list[int], key: str = "VmRSS") -> int:
    """Resident memory of the processes together (VmHWM: the sum of their peaks)."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                total += int(line.split()[1])
    return total


async def open_stream(
    stub: chat_pb2_grpc.ChatServiceStub, md: Metadata, cid: str, content: str, opened: asyncio.Event
) -> StreamResult:
    result = StreamResult()
    started = time.monotonic()
    call = stub.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=content), metadata=md)
    async for event in call:
        kind = event.WhichOneof("event")
        if kind == "accepted":
            result.accepted_after = time.monotonic() - started
            opened.set()
        elif kind == "delta":
            result.text += event.delta.text
            result.arrivals.append((time.monotonic(), len(result.text.split())))
        elif kind == "completed":
            result.completed = True
    return result


async def client_part(
    addr: str, md: Metadata, cids: list[str], content: str, start_at: float, opened_all: Any
) -> list[StreamResult | str]:
    """One client process's share: open its streams at start_at (wall clock,
    shared by all clients), report on opened_all once every stream is
    accepted (or ended), and return each stream's result or error."""
    channels = [grpc.aio.insecure_channel(addr) for _ in range(max(1, -(-len(cids) // STREAMS_PER_CHANNEL)))]
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        opened = [asyncio.Event() for _ in cids]
        tasks = [
            asyncio.create_task(
                open_stream(chat_pb2_grpc.ChatServiceStub(channels[i % len(channels)]), md, cid, content, opened[i])
            )
            for i, cid in enumerate(cids)
        ]

        async def accepted_or_ended(task: asyncio.Task[StreamResult], event: asyncio.Event) -> None:
            """Until the stream is accepted, or has ended (an error must not hang the run)."""
            waiter = asyncio.ensure_future(event.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

        await asyncio.gather(*(accepted_or_ended(t, e) for t, e in zip(tasks, opened, strict=True)))
        opened_all.put(len(cids))
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for channel in channels:
            await channel.close()
    return [r if isinstance(r, StreamResult) else describe(r) for r in results]


def describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"


def client_process(
    addr: str, md: Metadata, cids: list[str], content: str, start_at: float, opened_all: Any
) -> list[StreamResult | str]:
    """Entry point of a client process (spawned: no gRPC state inherited)."""
    return asyncio.run(client_part(addr, md, cids, content, start_at, opened_all))


async def create_conversations(addr: str, n: int) -> tuple[Metadata, list[str]]:
    async with grpc.aio.insecure_channel(addr) as channel:
        login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(email="bench@example.com", password=PASSWORD)
        )
        md = (("authorization", f"Bearer {login.tokens.access_token}"),)
        agents = await agent_pb2_grpc.AgentServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), metadata=md)
        agent_id = next(a.id for a in agents.agents if a.slug == "assistant")
        conversations = conversation_pb2_grpc.ConversationServiceStub(channel)
        cids = []
        for _ in range(n):
            created = await conversations.CreateConversation(
                conversation_pb2.CreateConversationRequest(agent_id=agent_id, title="bench"), metadata=md
            )
            cids.append(created.conversation.id)
    return md, cids


async def run_round(server: ServerProcess, n: int, words: int, delay_ms: int, clients: int) -> None:
    md, cids = await create_conversations(server.addr, n)
    content = " ".join(f"token{i}" for i in range(words - 1))
    expected = "Echo: " + content
    pids = serving_pids(server.process.pid)  # type: ignore[union-attr]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(clients, mp_context=context) as pool:
        opened_all = manager.Queue()
        loop = asyncio.get_running_loop()
        # Each client process gets a slice of the conversations; all open their
        # streams at one moment, once every process has started.
        start_at = time.time() + 3 + clients
        parts = [
            loop.run_in_executor(pool, client_process, server.addr, md, cids[k::clients], content, start_at, opened_all)
            for k in range(clients)
        ]
        await asyncio.sleep(max(0.0, start_at - time.time() - 0.5))
        rss_before = rss_kib(pids)
        cpu_before = cpu_seconds(pids)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.monotonic()
        for _ in range(clients):  # until every stream is accepted (or has ended)
            await loop.run_in_executor(None, opened_all.get)
        await asyncio.sleep(delay_ms / 1000 * words / 3)  # mid-stream: every stream open and streaming
        rss_open = rss_kib(pids)
        results = [r for part in await asyncio.gather(*parts) for r in part]
        elapsed = time.monotonic() - started
        cpu_used = cpu_seconds(pids) - cpu_before
    ok = [r for r in results if isinstance(r, StreamResult)]
    errors = [r for r in results if isinstance(r, str)]
    completed = sum(r.completed for r in ok)
    lost = sum(max(0, len(expected.split()) - len(r.text.split())) for r in ok) + len(errors) * words
    exact = sum(r.text == expected for r in ok)
    tokens = sum(len(r.text.split()) for r in ok)
    lateness = []
    for r in ok:
        # Each delta's arrival minus its due time on the stream's own schedule;
        # the schedule's origin is the stream's best (earliest) delta, so the
        # figure is what the server added, never negative.
        due = [(arrival - words * delay_ms / 1000) for arrival, words in r.arrivals]
        origin = min(due, default=0.0)
        lateness += [(d - origin) * 1000 for d in due]
    q = percentiles(lateness)
    accepts = percentiles([r.accepted_after * 1000 for r in ok if r.accepted_after is not None])
    print(f"\n== {n} concurrent streams x {words} words, echo delay {delay_ms} ms, {clients} client process(es)")
    print(f"completed:            {completed}/{n} ({'all' if completed == n else 'NOT all'}); exact text: {exact}/{n}")
    print(f"errors:               {len(errors)}" + (f" ({'; '.join(sorted(set(errors)))[:300]})" if errors else ""))
    print(f"tokens lost:          {lost}")
    print(f"tokens delivered:     {tokens} in {elapsed:.1f} s = {tokens / elapsed:,.0f} tokens/s")
    print(f"time to accepted:     p50 {accepts[49]:.0f} ms, p99 {accepts[98]:.0f} ms (all streams opened at once)")
    print(f"per-token lateness:   p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms (added on top of the {delay_ms} ms pacing)")
    print(
        f"server RSS:           before {rss_before / 1024:.1f} MiB, streams open {rss_open / 1024:.1f} MiB, "
        f"peak {rss_kib(pids, 'VmHWM') / 1024:.1f} MiB"
    )
    print(f"server CPU:           {cpu_used:.1f} s, {cpu_used / n * 1000:.1f} ms per exchange")
    print(f"RSS per open stream:  {(rss_open - rss_before) / n:.1f} KiB")


def percentiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=100) if len(values) > 1 else [0.0] * 99


async def prepare(server: ServerProcess) -> None:
    created = await asyncio.to_thread(
        server.parley, "create-admin", "bench@example.com", PARLEY_ADMIN_PASSWORD=PASSWORD
    )
    if created.returncode != 0:
        raise SystemExit(f"could not create the benchmark user: {created.stderr}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000], help="concurrent streams per round")
    parser.add_argument("--words", type=int, default=200, help="words per answer")
    parser.add_argument("--delay-ms", type=int, default=50, help="echo provider pause per word")
    parser.add_argument("--workers", type=int, default=1, help="server processes (parley serve --workers)")
    parser.add_argument("--clients", type=int, default=2, help="client processes sharing the streams")
    parser.add_argument("--quick", action="store_true", help="small run for CI (20 streams x 30 words)")
    args = parser.parse_args()
    if args.quick:
        args.streams, args.words, args.delay_ms = [20], 30, 20
    with tempfile.TemporaryDirectory() as tmp:
        # The default persistence interval, not the tests' faster one: figures for production settings.
        env = {
            "PARLEY_ECHO_DELAY_MS": str(args.delay_ms),
            "PARLEY_LOG_LEVEL": "WARNING",
            "PARLEY_PERSIST_INTERVAL_MS": "500",
        }
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        server = ServerProcess(Path(tmp), args=("--no-envoy", "--workers", str(args.workers)), **env).start()
        print(f"server: parley serve --workers {args.workers}, embedded PostgreSQL unless DATABASE_URL is set")
        try:
            await prepare(server)
            for n in args.streams:
                await run_round(server, n, args.words, args.delay_ms, args.clients)
        finally:
            server.terminate()


if __name__ == "__main__":
    asyncio.run(main())
