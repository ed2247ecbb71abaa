#!/usr/bin/env python3
"""Soak: long chat and unary load with one PostgreSQL restart in the middle.

Starts a PostgreSQL cluster of its own (pgserver's binaries) and a
`parley serve --no-envoy` on it, then runs, through the Python client, as
many concurrent SendMessage streams as --streams (one answer after another
per stream, each followed to its end, resumed if the client gives up on it)
and --writers loops of CreateMessage (with a request id, retried with the
same id after UNAVAILABLE) + ListMessages. Half-way through, PostgreSQL is
restarted (`pg_ctl stop -m fast`, then start). It prints, while it runs, the
server's RSS, open streams, answers finished, writes acknowledged and errors;
at the end errors by code, acknowledged writes lost or duplicated, answers
with wrong text, answers left STREAMING, and the RSS growth from after the
warm-up to the end (it must stay flat, and nothing may be lost).

    python scripts/soak.py                 # 1,000 streams, 10 minutes
    python scripts/soak.py --quick         # CI: 100 streams, 40 s
    python scripts/soak.py --streams 300 --minutes 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.targets import rss_kib  # noqa: E402
from parley.agent.v1 import agent_pb2  # noqa: E402
from parley.client import ParleyClient  # noqa: E402
from parley.conversation.v1 import conversation_pb2  # noqa: E402
from parley_server.db.database import asyncpg_dsn  # noqa: E402
from tests.helpers.fault_load import Load, audit, stream_loop, write_loop  # noqa: E402
from tests.helpers.pg_cluster import PgCluster  # noqa: E402
from tests.helpers.served import ServerProcess  # noqa: E402

EMAIL = "soak@example.com"
PASSWORD = "soak password 12345"
STREAMS_PER_CLIENT = 50  # HTTP/2 caps concurrent streams per connection
WORDS = 24
ECHO_DELAY_MS = 250  # an answer takes about WORDS * this
SAMPLES = 20
DRAIN_SECONDS = 120


async def client_for(addr: str) -> ParleyClient:
    client = ParleyClient(addr)
    await client.login(EMAIL, PASSWORD)
    return client


async def soak(server: ServerProcess, cluster: PgCluster, streams: int, writers: int, seconds: float) -> int:
    assert server.process is not None
    pid = server.process.pid
    load, stop = Load(), asyncio.Event()
    clients = [await client_for(server.addr) for _ in range(max(1, -(-streams // STREAMS_PER_CLIENT)) + 1)]
    agents = await clients[0].agents.ListAgents(agent_pb2.ListAgentsRequest())
    agent = next(a.id for a in agents.agents if a.slug == "assistant")
    create = conversation_pb2.CreateConversationRequest(agent_id=agent)
    conversations = [
        (await clients[0].conversations.CreateConversation(create)).conversation.id for _ in range(writers)
    ]
    tasks = [asyncio.create_task(write_loop(clients[-1], c, load, stop)) for c in conversations]
    for n in range(streams):
        cid = (await clients[0].conversations.CreateConversation(create)).conversation.id
        client = clients[n // STREAMS_PER_CLIENT]
        tasks.append(asyncio.create_task(stream_loop(client, cid, f"s{n}", WORDS, load, stop)))

    started = time.monotonic()
    restart_at, interval = seconds / 2, seconds / SAMPLES
    restarted = False
    rss: list[tuple[float, int]] = []
    print(f"{'t':>6} {'RSS MiB':>8} {'open':>6} {'answers':>8} {'writes':>8}  errors")
    while (elapsed := time.monotonic() - started) < seconds:
        await asyncio.sleep(min(interval - elapsed % interval, seconds - elapsed))
        elapsed = time.monotonic() - started
        rss.append((elapsed, rss_kib([pid])))
        print(
            f"{elapsed:6.0f} {rss[-1][1] / 1024:8.1f} {load.streams_open:6d} {load.streams_completed:8d}"
            f" {len(load.acked):8d}  {dict(load.codes) or ''}",
            flush=True,
        )
        if not restarted and elapsed >= restart_at:
            restarted = True
            began = time.monotonic()
            await asyncio.to_thread(cluster.restart)
            print(f"-- PostgreSQL restarted (stop -m fast, start) in {time.monotonic() - began:.2f} s", flush=True)

    stop.set()
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            await asyncio.gather(*tasks)
    except TimeoutError:
        print(f"!! {sum(not t.done() for t in tasks)} loops still running {DRAIN_SECONDS} s after the end")
    for client in clients:
        await client.close()
    result = await audit(asyncpg_dsn(cluster.url), load)
    warm = next((kib for t, kib in rss if t >= seconds / 4), rss[0][1])
    print()
    print(f"answers finished        {load.streams_completed} ({load.streams_resumed} resumed after UNAVAILABLE)")
    print(f"answers with wrong text {len(load.wrong_text)}")
    print(f"writes acknowledged     {len(load.acked)}")
    print(f"writes lost             {result.lost}")
    print(f"writes duplicated       {result.duplicated}")
    print(f"answers left STREAMING  {result.streaming}")
    print(f"errors by code          {dict(load.codes) or 'none'}")
    print(
        f"RSS after warm-up / end {warm / 1024:.1f} / {rss[-1][1] / 1024:.1f} MiB ({(rss[-1][1] - warm) / 1024:+.1f})"
    )
    unexpected_codes = set(load.codes) - {"UNAVAILABLE"}
    failed = result.lost or result.duplicated or result.streaming or load.wrong_text or unexpected_codes
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 streams for 40 s (CI)")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent chat streams (default 1000)")
    parser.add_argument("--writers", type=int, default=20, help="concurrent unary write+read loops (default 20)")
    parser.add_argument("--minutes", type=float, default=10, help="how long (default 10)")
    args = parser.parse_args()
    streams, seconds = (100, 40.0) if args.quick else (args.streams, args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="parley-soak-") as tmp:
        cluster = PgCluster(Path(tmp) / "pg").init()
        cluster.start()
        server = ServerProcess(Path(tmp) / "serve", DATABASE_URL=cluster.url, PARLEY_ECHO_DELAY_MS=str(ECHO_DELAY_MS))
        try:
            server.start()
            created = server.parley("create-admin", EMAIL, PARLEY_ADMIN_PASSWORD=PASSWORD)
            if created.returncode != 0:
                raise SystemExit(created.stderr)
            print(f"soak: {streams} streams, {args.writers} writers, {seconds:.0f} s, PostgreSQL restart half-way")
            code = asyncio.run(soak(server, cluster, streams, args.writers, seconds))
            exit_code = server.terminate(timeout=60)
            print(f"server exited with {exit_code} after SIGTERM")
            return code or int(exit_code != 0)
        finally:
            server.kill()
            cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
