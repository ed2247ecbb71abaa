#!/usr/bin/env python3
"""NOTIFY traffic between replicas, with and without a remote watcher.

Starts one PostgreSQL (a fresh embedded one, or a fresh database on
DATABASE_URL) and two `parley serve` replicas on it, A and B. In each case
it opens N SendMessage streams on A (the offline echo provider), while a
LISTEN connection of its own on Parley's event channels (events and
interest announcements) counts the NOTIFYs every replica sends and their
payload bytes:

- no remote watcher: nobody outside A follows the conversations;
- a remote watcher: one WatchConversation stream on B per conversation,
  each of which must see the whole answer (text at its offsets) finished.

It prints, per case, NOTIFY/s and payload KB/s (and bytes per token) while
the answers stream,
tokens/s delivered on A, and, with watchers, how many got the exact text.

    python scripts/bench_notify.py                  # 200 streams x 100 words
    python scripts/bench_notify.py --quick          # CI: 20 streams x 20 words
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.connections import own_connection  # noqa: E402
from benchmarks.database import describe, fresh_database_url  # noqa: E402
from benchmarks.parley_api import Metadata, bearer, create_conversations, create_user, login  # noqa: E402
from parley.chat.v1 import chat_pb2, chat_pb2_grpc  # noqa: E402
from parley.conversation.v1 import conversation_pb2  # noqa: E402
from parley_server.db.database import asyncpg_dsn  # noqa: E402
from parley_server.events import bus  # noqa: E402
from parley_server.events.bus import CHANNEL, INTEREST_CHANNEL  # noqa: E402
from parley_server.settings import DEFAULT_DB_SCHEMA  # noqa: E402
from tests.helpers.served import ServerProcess  # noqa: E402

EMAIL = "notify@bench.test"
# Streams per connection, as in bench_chat.py: HTTP/2 caps them per connection.
STREAMS_PER_CHANNEL = 50
ASSISTANT = conversation_pb2.MESSAGE_ROLE_ASSISTANT
# How long watchers may take to see the end of the answers after the senders did.
DRAIN_SECONDS = 10


@dataclass
class Notifications:
    """NOTIFYs seen on Parley's channel while counting."""

    counting: bool = False
    count: int = 0
    payload_bytes: int = 0

    def listener(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        if self.counting:
            self.count += 1
            self.payload_bytes += len(str(payload).encode())


@dataclass
class Watch:
    """What one WatchConversation stream saw of the answer."""

    text: str = ""


async def send(stub: chat_pb2_grpc.ChatServiceStub, md: Metadata, cid: str, content: str) -> str:
    """One exchange on A, read to its end; the answer's text."""
    text = ""
    async for event in stub.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=content), metadata=md):
        if event.WhichOneof("event") == "delta":
            text += event.delta.text
    return text


async def watch(stub: chat_pb2_grpc.ChatServiceStub, md: Metadata, cid: str, seen: Watch) -> None:
    """Follow a conversation on B until its answer is finished, assembling the
    answer's text as a watcher must: what message_created carried, then each
    delta at its offset (a gap or an overlap leaves the text wrong)."""
    call = stub.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=md)
    try:
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "message_created" and event.message_created.role == ASSISTANT:
                seen.text = event.message_created.content
            elif kind == "delta":
                seen.text = seen.text[: event.delta.offset] + event.delta.text
            elif kind == "message_completed" and event.message_completed.role == ASSISTANT:
                return
    finally:
        call.cancel()


def channels(addr: str, streams: int) -> list[grpc.aio.Channel]:
    return [own_connection(addr) for _ in range(max(1, -(-streams // STREAMS_PER_CHANNEL)))]


async def run_case(
    a: ServerProcess, b: ServerProcess, token: str, n: int, words: int, notes: Notifications, remote: bool
) -> None:
    md = bearer(token)
    content = " ".join(f"token{i}" for i in range(words - 1))
    expected = "Echo: " + content
    to_a, to_b = channels(a.addr, n), channels(b.addr, n)
    try:
        cids = await create_conversations(to_a[0], token, n)
        seen = [Watch() for _ in cids]
        watchers = []
        if remote:
            watchers = [
                asyncio.create_task(watch(chat_pb2_grpc.ChatServiceStub(to_b[k % len(to_b)]), md, cid, seen[k]))
                for k, cid in enumerate(cids)
            ]
            await asyncio.sleep(1)  # every watch registered on B before the first word
        notes.count = notes.payload_bytes = 0
        notes.counting = True
        started = time.monotonic()
        texts = await asyncio.gather(
            *(send(chat_pb2_grpc.ChatServiceStub(to_a[k % len(to_a)]), md, cid, content) for k, cid in enumerate(cids))
        )
        elapsed = time.monotonic() - started
        notes.counting = False
        if remote:
            await asyncio.wait(watchers, timeout=DRAIN_SECONDS)
        for task in watchers:
            task.cancel()
    finally:
        for channel in to_a + to_b:
            await channel.close()
    tokens = sum(len(t.split()) for t in texts)
    title = f"a watcher on B per conversation ({n})" if remote else "no remote watcher"
    print(f"\n-- {title}")
    print(f"answers on A:        {sum(t == expected for t in texts)}/{n} exact, {tokens / elapsed:,.0f} tokens/s")
    print(
        f"NOTIFY:              {notes.count} in {elapsed:.1f} s = {notes.count / elapsed:,.1f}/s, "
        f"{notes.payload_bytes / elapsed / 1000:,.1f} KB/s of payload ({notes.payload_bytes / tokens:,.0f} B per token)"
    )
    if remote:
        print(f"watchers on B:       {sum(w.text == expected for w in seen)}/{n} saw the exact text")


async def main_async(args: argparse.Namespace) -> None:
    secret = secrets.token_urlsafe(48)
    with fresh_database_url() as url, tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATABASE_URL": url,
            "PARLEY_JWT_SECRET": secret,
            "PARLEY_ECHO_DELAY_MS": str(args.delay_ms),
            "PARLEY_LOG_LEVEL": "WARNING",
            # The default persistence interval, not the tests' faster one: figures for production settings.
            "PARLEY_PERSIST_INTERVAL_MS": "500",
        }
        a = ServerProcess(Path(tmp) / "a", args=("--no-envoy",), **env).start()
        b = ServerProcess(Path(tmp) / "b", args=("--no-envoy",), **env).start()
        listener = await asyncpg.connect(asyncpg_dsn(url))
        try:
            notes = Notifications()
            for name in (CHANNEL, INTEREST_CHANNEL):
                await listener.add_listener(bus.channel(name, DEFAULT_DB_SCHEMA), notes.listener)
            await create_user(a, EMAIL)
            async with grpc.aio.insecure_channel(a.addr) as channel:
                token = await login(channel, EMAIL)
            print(
                f"PostgreSQL: {describe()}; replicas A and B (parley serve --no-envoy); "
                f"{args.streams} streams x {args.words} words on A, echo delay {args.delay_ms} ms"
            )
            for remote in (False, True):
                await run_case(a, b, token, args.streams, args.words, notes, remote)
        finally:
            await listener.close()
            b.terminate()
            a.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200, help="concurrent answers on A")
    parser.add_argument("--words", type=int, default=100, help="words per answer")
    parser.add_argument("--delay-ms", type=int, default=50, help="echo provider pause per word")
    parser.add_argument("--quick", action="store_true", help="CI: 20 streams x 20 words")
    args = parser.parse_args()
    if args.quick:
        args.streams, args.words, args.delay_ms = 20, 20, 20
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
