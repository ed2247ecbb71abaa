#!/usr/bin/env python3
"""Latency of the admin statistics and of conversation listing on a big database.

Starts a real `parley serve` child process on DATABASE_URL (or the embedded
PostgreSQL of PARLEY_DATA_DIR), so the figures are the server's and not those
of a client sharing its event loop. This process migrates, seeds (--quick),
creates an administrator, then, as a plain gRPC client, logs in as the
administrator and as the heavy seeded user and prints p50/p95 over N calls of:

- GetStats fully cold, 30 and 90 days: the stored per-day figures
  (stats_day, stats_day_agent) are emptied before every call and every call
  asks a new range, so the server computes every day from usage_daily and
  stores it (the worst case: a range nobody asked for yet);
- GetStats with the days stored but a new range each call, 30 and 90 days:
  what a fresh replica, or a range not cached in the process, costs;
- GetStats cached: one range asked again and again;
- ListConversations: the first page, and pages deep in the heavy user's list;
- ListUsers: the first page, and a filtered one.

A new range differs from the others by its start minute; all end now.
Targets: GetStats p50 < 100 ms, ListConversations page p50 < 10 ms.

    python scripts/seed_bulk.py && python scripts/bench_admin.py
    python scripts/bench_admin.py --quick      # CI: seeds a small data set if needed, few calls
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from seed_bulk import HEAVY_USER_EMAIL, SEED_PASSWORD, Sizes, seed
from sqlalchemy import exists, select, text

from parley.admin.v1 import admin_pb2, admin_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from parley_server.app import App, build_app
from parley_server.cli import resolve_database_url
from parley_server.db.migrate import migrate
from parley_server.db.models import User
from parley_server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers.served import ServerProcess

ADMIN_EMAIL = "bench-admin@parley.test"
ADMIN_PASSWORD = "bench-admin-password"
QUICK_SIZES = Sizes(users=200, conversations=2_000, messages=20_000, agents=12, days=90)
PAGE_SIZE = 50
Metadata = tuple[tuple[str, str], ...]


def settings_from_env() -> Settings:
    """The environment's settings, with a throwaway JWT secret and the outbox unless set.

    Used by this process only (migrate, seed, create the admin); the server
    child has its own data directory and secret.
    """
    env = dict(os.environ)
    env.setdefault("PARLEY_JWT_SECRET", secrets.token_urlsafe(48))
    env.setdefault("PARLEY_EMAIL_BACKEND", "outbox")
    env.setdefault("PARLEY_LOG_LEVEL", "WARNING")
    return Settings.from_env(env)


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def timed(
    label: str,
    calls: list[Callable[[], Awaitable[Any]]],
    before_each: Callable[[], Awaitable[None]] | None = None,
) -> list[float] | None:
    """Run calls one after the other, each after before_each (not timed); their
    latencies in ms, or None when the RPC is unimplemented."""
    latencies = []
    for call in calls:
        if before_each is not None:
            await before_each()
        started = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                print(f"{label:<52} UNIMPLEMENTED on this server; skipped")
                return None
            raise
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def report(label: str, latencies: list[float] | None, target_ms: float | None = None) -> None:
    if latencies is None:
        return
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    verdict = ""
    if target_ms is not None:
        verdict = f"  target p50 < {target_ms:g} ms: {'ok' if p50 < target_ms else 'MISSED'}"
    spread = f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {max(latencies):7.1f} ms"
    print(f"{label:<52} n={len(latencies):<4} {spread}{verdict}")


async def login(auth: auth_pb2_grpc.AuthServiceStub, email: str, password: str) -> Metadata:
    response = await auth.Login(auth_pb2.LoginRequest(email=email, password=password))
    return (("authorization", f"Bearer {response.tokens.access_token}"),)


async def bench_stats(
    admin: admin_pb2_grpc.AdminServiceStub, md: Metadata, calls: int, forget_stored_days: Callable[[], Awaitable[None]]
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # Start minutes no range used before: the server's per-range cache never answers.
    earlier = itertools.count(1)

    def stats(days: int, *, new_range: bool = True) -> Callable[[], Awaitable[Any]]:
        start = now - timedelta(days=days, minutes=next(earlier) if new_range else 0)
        request = admin_pb2.GetStatsRequest(start_time=ts(start), end_time=ts(now))
        return lambda: admin.GetStats(request, metadata=md)

    await stats(90)()  # not timed: the server opens its pooled connections
    for days in (30, 90):
        cold = await timed("GetStats", [stats(days) for _ in range(calls)], before_each=forget_stored_days)
        report(f"GetStats {days} days, fully cold (no stored day)", cold, 100)
    for days in (30, 90):
        await stats(days)()  # stores the days of the range
        warm = await timed("GetStats", [stats(days) for _ in range(calls)])
        report(f"GetStats {days} days, days stored, new range", warm, 100)
    await stats(30, new_range=False)()
    cached = await timed("GetStats", [stats(30, new_range=False) for _ in range(calls)])
    report("GetStats 30 days, cached (same range)", cached, 100)


async def bench_conversations(
    conversations: conversation_pb2_grpc.ConversationServiceStub, md: Metadata, calls: int
) -> None:
    def page(token: str) -> Callable[[], Awaitable[Any]]:
        request = conversation_pb2.ListConversationsRequest(page_size=PAGE_SIZE, page_token=token)
        return lambda: conversations.ListConversations(request, metadata=md)

    first = await timed("ListConversations", [page("")] * calls)
    if first is None:
        return
    report(f"ListConversations first page ({PAGE_SIZE})", first, 10)
    tokens = [""]
    while len(tokens) < 1000:
        response = await page(tokens[-1])()
        if not response.next_page_token:
            break
        tokens.append(response.next_page_token)
    deep = tokens[len(tokens) // 2 :]
    report(
        f"ListConversations pages {len(tokens) // 2 + 1}..{len(tokens)} of {len(tokens)}",
        await timed("ListConversations", [page(deep[n % len(deep)]) for n in range(calls)]),
        10,
    )


async def bench_users(admin: admin_pb2_grpc.AdminServiceStub, md: Metadata, calls: int) -> None:
    first = admin_pb2.ListUsersRequest(page_size=PAGE_SIZE)
    report("ListUsers first page", await timed("ListUsers", [lambda: admin.ListUsers(first, metadata=md)] * calls))
    filtered = admin_pb2.ListUsersRequest(page_size=PAGE_SIZE, email_contains="seed00", premium=True)
    report(
        "ListUsers email_contains + premium",
        await timed("ListUsers", [lambda: admin.ListUsers(filtered, metadata=md)] * calls),
    )


async def is_seeded(app: App) -> bool:
    async with app.database.transaction() as db:
        return bool(await db.scalar(select(exists().where(User.email == HEAVY_USER_EMAIL))))


async def main_async(calls: int, quick: bool) -> None:
    settings = settings_from_env()
    url = resolve_database_url(settings)
    app = build_app(settings, url)
    try:
        await migrate(app.database)
        if not await is_seeded(app):
            if not quick:
                raise SystemExit(f"{HEAVY_USER_EMAIL} not found: run scripts/seed_bulk.py first (or use --quick)")
            await seed(url, settings.db_schema, QUICK_SIZES, 42)
        await app.auth.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)

        async def forget_stored_days() -> None:
            async with app.database.transaction() as db:
                await db.execute(text("TRUNCATE stats_day, stats_day_agent"))

        with tempfile.TemporaryDirectory() as data_dir:
            server = await asyncio.to_thread(
                ServerProcess(Path(data_dir), DATABASE_URL=url, PARLEY_LOG_LEVEL="WARNING").start
            )
            try:
                async with grpc.aio.insecure_channel(server.addr) as channel:
                    auth = auth_pb2_grpc.AuthServiceStub(channel)
                    admin = admin_pb2_grpc.AdminServiceStub(channel)
                    admin_md = await login(auth, ADMIN_EMAIL, ADMIN_PASSWORD)
                    user_md = await login(auth, HEAVY_USER_EMAIL, SEED_PASSWORD)
                    health = await admin.GetSystemHealth(admin_pb2.GetSystemHealthRequest(), metadata=admin_md)
                    print(
                        f"server {health.version} (parley serve at {server.addr}), database latency "
                        f"{health.database_latency.ToTimedelta().total_seconds() * 1000:.1f} ms, {calls} calls each"
                    )
                    await bench_stats(admin, admin_md, calls, forget_stored_days)
                    await bench_conversations(conversation_pb2_grpc.ConversationServiceStub(channel), user_md, calls)
                    await bench_users(admin, admin_md, calls)
            finally:
                await asyncio.to_thread(server.terminate)
    finally:
        await app.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, help="calls per measurement (default 200, 30 with --quick)")
    parser.add_argument("--quick", action="store_true", help="seed a small data set if needed; few calls (CI)")
    args = parser.parse_args(argv)
    calls = args.calls or (30 if args.quick else 200)
    if calls < 2:
        parser.error("--calls must be at least 2")
    asyncio.run(main_async(calls, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
