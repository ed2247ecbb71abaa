#!/usr/bin/env python3
"""Latency of the admin statistics and of conversation listing on a big database.

Starts an in-process Parley server (build_app + start_server, as the tests
do) on DATABASE_URL (or the embedded PostgreSQL), logs in as an administrator
and as the heavy seeded user, and prints p50/p95 over N real gRPC calls of:

- GetStats cold: the in-process caches are emptied before every call, so
  everything is computed by SQL (the worst case);
- GetStats with a new range each call (distinct minutes, 1 to 90 days): no
  call hits the cache entry of its own range;
- GetStats cached: one range asked again and again;
- ListConversations: the first page, and pages deep in the heavy user's list;
- ListUsers: the first page, and a filtered one.

Targets: GetStats p50 < 100 ms, ListConversations page p50 < 10 ms.

    python scripts/seed_bulk.py && python scripts/bench_admin.py
    python scripts/bench_admin.py --quick      # CI: seeds a small data set if needed, few calls
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from parley.admin.v1 import admin_pb2, admin_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from sqlalchemy import exists, select

from parley_server.app import App, build_app
from parley_server.cli import resolve_database_url
from parley_server.config import Settings
from parley_server.db.migrate import migrate
from parley_server.db.models import User
from parley_server.server import start_server
from seed_bulk import HEAVY_USER_EMAIL, SEED_PASSWORD, Sizes, seed

ADMIN_EMAIL = "bench-admin@parley.test"
ADMIN_PASSWORD = "bench-admin-password"
QUICK_SIZES = Sizes(users=200, conversations=2_000, messages=20_000, agents=12, days=90)
PAGE_SIZE = 50
Metadata = tuple[tuple[str, str], ...]


def settings_from_env() -> Settings:
    """The environment's settings, with a throwaway JWT secret and the outbox unless set."""
    env = dict(os.environ)
    env.setdefault("PARLEY_JWT_SECRET", secrets.token_urlsafe(48))
    env.setdefault("PARLEY_EMAIL_BACKEND", "outbox")
    env.setdefault("PARLEY_LOG_LEVEL", "WARNING")
    return Settings.from_env(env)


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def timed(label: str, calls: list[Callable[[], Awaitable[Any]]]) -> list[float] | None:
    """Run calls one after the other; their latencies in ms, or None when the RPC is unimplemented."""
    latencies = []
    for call in calls:
        started = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                print(f"{label:<44} UNIMPLEMENTED on this server; skipped")
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
    print(f"{label:<44} n={len(latencies):<4} {spread}{verdict}")


async def login(auth: auth_pb2_grpc.AuthServiceStub, email: str, password: str) -> Metadata:
    response = await auth.Login(auth_pb2.LoginRequest(email=email, password=password))
    return (("authorization", f"Bearer {response.tokens.access_token}"),)


async def bench_stats(app: App, admin: admin_pb2_grpc.AdminServiceStub, md: Metadata, calls: int) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    def stats(end: datetime, days: int, *, cold: bool = False) -> Callable[[], Awaitable[Any]]:
        request = admin_pb2.GetStatsRequest(start_time=ts(end - timedelta(days=days)), end_time=ts(end))

        async def call() -> Any:
            return await admin.GetStats(request, metadata=md)

        if not cold:
            return call

        async def cold_call() -> Any:
            app.admin.clear_stats_cache()
            return await call()

        return cold_call

    # Cold: every cache emptied before the call, so all of it is computed by SQL.
    cold = [stats(now, 30, cold=True)] * calls
    report("GetStats cold, 30 days (no cache at all)", await timed("GetStats", cold), 100)
    cold_long = [stats(now, 90, cold=True)] * calls
    report("GetStats cold, 90 days (no cache at all)", await timed("GetStats", cold_long), 100)
    # New ranges: distinct end minutes and lengths, so no call is a cache hit for its range.
    fresh = [stats(now - timedelta(minutes=n + 1), 1 + (n * 7) % 90) for n in range(calls)]
    report("GetStats new range each call (1..90 days)", await timed("GetStats", fresh), 100)
    await stats(now, 30)()
    report("GetStats cached (same 30 day range)", await timed("GetStats", [stats(now, 30)] * calls), 100)


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
            await seed(url, QUICK_SIZES, 42)
        await app.auth.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        running = await start_server(app, "127.0.0.1:0")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                auth = auth_pb2_grpc.AuthServiceStub(channel)
                admin = admin_pb2_grpc.AdminServiceStub(channel)
                admin_md = await login(auth, ADMIN_EMAIL, ADMIN_PASSWORD)
                user_md = await login(auth, HEAVY_USER_EMAIL, SEED_PASSWORD)
                health = await admin.GetSystemHealth(admin_pb2.GetSystemHealthRequest(), metadata=admin_md)
                print(
                    f"server {health.version}, database latency "
                    f"{health.database_latency.ToTimedelta().total_seconds() * 1000:.1f} ms, {calls} calls each"
                )
                await bench_stats(app, admin, admin_md, calls)
                await bench_conversations(conversation_pb2_grpc.ConversationServiceStub(channel), user_md, calls)
                await bench_users(admin, admin_md, calls)
        finally:
            await running.stop(0)
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
