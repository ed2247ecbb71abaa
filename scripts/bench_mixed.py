#!/usr/bin/env python3
"""Mixed unary load on a real `parley serve` process: ListMessages against GetConversation.

Starts a server process on its own database (DATABASE_URL, or a fresh
embedded PostgreSQL in a temporary directory), stores 70 messages in each of
20 conversations through the API, then runs 200 closed-loop clients
(benchmarks/driver.py, in --processes client processes), each alternating
GetConversation and the first page (20) of ListMessages over the
conversations, and prints each RPC's rate and p50/p90/p99 latency under that
shared load, and ListMessages' p50 over GetConversation's (the performance
issue's target: within 2x).

The clients use one account's token: the session check is cached per
session, so more accounts would change nothing after each one's first call.

    python scripts/bench_mixed.py                  # 200 clients, 20 s
    python scripts/bench_mixed.py --quick          # CI: 200 clients, 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.driver import Call, drive  # noqa: E402
from benchmarks.parley_api import add_messages, create_conversations, create_user, login  # noqa: E402
from benchmarks.targets import cpu_seconds, serving_pids  # noqa: E402
from parley.conversation.v1 import conversation_pb2  # noqa: E402
from tests.helpers.served import ServerProcess  # noqa: E402

EMAIL = "mixed@bench.test"
SERVICE = "/parley.conversation.v1.ConversationService/"
CONVERSATIONS = 20
MESSAGES = 70
PAGE_SIZE = 20
TARGET_P50_RATIO = 2.0


async def seed(server: ServerProcess) -> tuple[str, list[str]]:
    """The token and the conversations, each with MESSAGES messages (written concurrently)."""
    await create_user(server, EMAIL)
    async with grpc.aio.insecure_channel(server.addr) as channel:
        token = await login(channel, EMAIL)
        ids = await create_conversations(channel, token, CONVERSATIONS)
        await asyncio.gather(*(add_messages(channel, token, cid, MESSAGES) for cid in ids))
    return token, ids


def calls(token: str, conversation_ids: list[str]) -> list[Call]:
    """GetConversation and ListMessages of each conversation, in turn."""
    mix = []
    for cid in conversation_ids:
        get = conversation_pb2.GetConversationRequest(conversation_id=cid)
        page = conversation_pb2.ListMessagesRequest(conversation_id=cid, page_size=PAGE_SIZE)
        mix.append(Call("GetConversation", SERVICE + "GetConversation", get.SerializeToString(), token))
        mix.append(Call(f"ListMessages ({PAGE_SIZE})", SERVICE + "ListMessages", page.SerializeToString(), token))
    return mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent closed-loop clients")
    parser.add_argument("--seconds", type=float, default=20, help="measured time, after a 2 s warm-up")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--quick", action="store_true", help="CI: 3 s")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 3
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": os.environ["DATABASE_URL"]} if os.environ.get("DATABASE_URL") else {}
        server = ServerProcess(Path(tmp), args=("--no-envoy",), **env).start()
        try:
            token, ids = asyncio.run(seed(server))
            mix = calls(token, ids)
            pids = serving_pids([server.process.pid])  # type: ignore[union-attr]
            cpu_before = cpu_seconds(pids)
            outcome = drive(
                server.addr, mix, clients=args.clients, processes=args.processes, seconds=args.seconds, warm_up=2
            )
            cpu_used = cpu_seconds(pids) - cpu_before
        finally:
            server.terminate()
    print(
        f"parley serve (embedded PostgreSQL unless DATABASE_URL is set), {args.clients} clients in "
        f"{args.processes} processes, {CONVERSATIONS} conversations x {MESSAGES} messages, {args.seconds:g} s measured"
    )
    print(f"{'RPC':<22} {'calls/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    labels = sorted({c.label for c in mix})
    for label in labels:
        p50, p90, p99 = (outcome.percentile(label, p) for p in (50, 90, 99))
        print(f"{label:<22} {outcome.rate(label):>8,.0f} {p50:>8.1f} {p90:>8.1f} {p99:>8.1f}")
    print(f"server CPU: {cpu_used / max(1, outcome.completed) * 1e6:,.0f} us per call")
    get, page = (outcome.percentile(label, 50) for label in labels)
    ratio = page / get if get else float("inf")
    verdict = "ok" if ratio <= TARGET_P50_RATIO else "MISSED"
    print(f"ListMessages p50 / GetConversation p50: {ratio:.2f}x (target <= {TARGET_P50_RATIO:g}: {verdict})")
    for line in outcome.error_lines():
        print(f"!! {line}")
    return 1 if outcome.errors else 0


if __name__ == "__main__":
    sys.exit(main())
