#!/usr/bin/env python3
"""Unary throughput of Parley against a bare grpc.aio server and a FastAPI peer, in one run.

Starts, on one PostgreSQL (a fresh embedded one, or a fresh database on
DATABASE_URL), three targets per --workers value N, each N processes:

- the limit: a bare grpc.aio server answering grpc.health.v1 Check, with no
  interceptor, authentication or database (benchmarks/bare_grpc.py);
- the peer: FastAPI on uvicorn doing exactly GetConversation's work (bearer
  JWT checked with PyJWT, the caller's row by id with async SQLAlchemy, JSON
  out) on Parley's own table (benchmarks/fastapi_peer.py);
- `parley serve --no-envoy --workers N`.

All log as they do by default (Parley and uvicorn: a line per request). It
seeds Parley through its API (a reader with 30 conversations, a writer with
one per concurrent call), then drives each target with h2load (one C
thread, so the servers get the CPU; 64 calls in flight: 16 HTTP/2
connections x 4 streams, or 64 HTTP/1.1 connections for the peer),
alternating targets round after round, and prints each target's median
req/s, the CPU it and PostgreSQL spent per request (PostgreSQL's: every
process of the server, read from /proc), and Parley's ratios to the limit
and to the peer, for GetConversation, the first page (20) of
ListConversations and CreateMessage with a request_id.

h2load sends one body over and over, so it cannot make first executions of
CreateMessage: every call would replay one request_id, all of them waiting
on one conversation's row lock, which no real client does. CreateMessage is
driven by benchmarks/grpc_load.mjs instead, a Node client on the same
HTTP/2 library, laid out as h2load (16 connections x 4 streams, each stream
writing to a conversation of its own): first executions (a fresh request_id
each call) and replays (one request_id per conversation, all calls after
the first). It needs more CPU per call than h2load, which it takes from the
servers, so its rates are low beside h2load's rather than high; its own
ceiling, the limit measured with it, is printed as a row of the table and
as a share of h2load's.

Every round is checked: the same call made with a real client before and
after it must succeed (grpc-status 0, or HTTP 200) with the same answer (a
first execution of CreateMessage only has to succeed); h2load's byte counts
must equal its successes times one answer's size (a gRPC error is an HTTP
200 without a message, which h2load counts as a success), and grpc_load.mjs
checks every answer's grpc-status. A round that fails a check is reported
and the script exits 1.

With --metrics, a second `parley serve` with the Prometheus endpoint on
(PARLEY_METRICS_ADDR, scraped every second by a thread of the benchmark, far
more often than Prometheus would) runs beside the first, which has it off,
both on the same database and pool size; its rows alternate with the others,
and the ratio of each RPC's rate and CPU per request, on to off, is printed
against the target (metrics cost at most 5%).

h2load is Debian's nghttp2-client, installed with apt-get when missing and
running as root.

    python scripts/bench_unary.py                  # --workers 1 and 2, 5 rounds of ~6 s
    python scripts/bench_unary.py --quick          # CI: --workers 1, one round of ~2 s
    python scripts/bench_unary.py --profile prof/  # plus a py-spy profile of Parley per RPC
    python scripts/bench_unary.py --workers 1 --metrics  # plus Parley with metrics on, and the ratio
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import secrets
import statistics
import sys
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import jwt
from grpc_health.v1 import health_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import grpc_load, h2load  # noqa: E402
from benchmarks.database import describe, fresh_database_url  # noqa: E402
from benchmarks.parley_api import bearer, create_conversations, create_user, login, message_request  # noqa: E402
from benchmarks.profile import Recording, summary  # noqa: E402
from benchmarks.targets import (  # noqa: E402
    Target,
    cpu_seconds,
    cpu_since,
    grpc_ready,
    http_ready,
    postgres_cpu,
    process_tree,
    python_module,
)
from parley.conversation.v1 import conversation_pb2  # noqa: E402
from parley_server.settings import DEFAULT_DB_SCHEMA  # noqa: E402
from tests.helpers.served import ServerProcess, free_port  # noqa: E402

CONVERSATION_SERVICE = "/parley.conversation.v1.ConversationService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# The web page's sidebar asks for 20 conversations a page.
PAGE_SIZE = 20
CONVERSATIONS = 30
# Database connections per server process: Parley's default pool at --workers 1.
# With N workers each process gets 1/N, so that Parley's and the peer's pools
# (both kept open between rounds) fit PostgreSQL's default 100 connections.
POOL_SIZE = 30
# HTTP/2 connections h2load spreads the calls in flight over: enough for
# SO_REUSEPORT to spread them evenly over a target's --workers.
CONNECTIONS = 16
# Targets of the performance issue, as ratios within one run.
TARGET_VS_LIMIT = 0.4
TARGET_VS_PEER = 3.0
# Metrics on may cost at most this share of the rate (or add it to the CPU per request).
TARGET_METRICS_OVERHEAD = 0.05
SCRAPE_INTERVAL_SECONDS = 1.0

# "" when a call made with a real client succeeded with the expected answer, else what went wrong.
Check = Callable[[], Awaitable[str]]
Token = Callable[[], Awaitable[str]]
# What a round sends: one body over and over (h2load), or a body per stream and call (grpc_load.mjs).
Load = h2load.Request | grpc_load.Request


@dataclass
class Row:
    """One measured target: how to load and check it, and what it did."""

    label: str
    kind: str  # "limit", "peer", "parley", or "client" (the limit through grpc_load.mjs)
    pids: list[int]
    # The round's request (a fresh token each round) and the check made before and after it.
    prepare: Callable[[], Awaitable[tuple[Load, Check]]]
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    # PostgreSQL's CPU per request (all its processes), in microseconds.
    database_cpu_us: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def cpu(self) -> float:
        """Median server CPU per request, in microseconds."""
        return statistics.median(self.cpu_us) if self.cpu_us else 0.0

    @property
    def database_cpu(self) -> float:
        """Median PostgreSQL CPU per request, in microseconds."""
        return statistics.median(self.database_cpu_us) if self.database_cpu_us else 0.0


def same_answer(expected: list[bytes], answer: bytes) -> str:
    """The first answer is the expected one; later ones must equal it."""
    if not expected:
        expected.append(answer)
    return "" if answer == expected[0] else "the answer changed"


def grpc_row(
    label: str,
    kind: str,
    pids: list[int],
    addr: str,
    method: str,
    body: bytes,
    token: Token | None,
    *,
    spread: tuple[bytes, ...] = (),
    request_id_field: int = 0,
    first_execution: Callable[[], bytes] | None = None,
) -> Row:
    """A gRPC target. h2load sends `body` over and over, and its answer must be
    the same bytes, with grpc-status 0, every time.

    With `spread` (a body per stream) or `request_id_field` (a fresh
    request_id in that field of every call), grpc_load.mjs sends them
    instead. The checks then send `first_execution()` when given (a new
    request_id each: an answer that is new every time, so only success is
    asked for), else `body`, whose answer must not change.
    """
    expected: list[bytes] = []

    async def prepare() -> tuple[Load, Check]:
        bearer_token = await token() if token else ""

        async def check() -> str:
            async with grpc.aio.insecure_channel(addr) as channel:
                call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                    method, request_serializer=None, response_deserializer=None
                )
                sent = first_execution() if first_execution else body
                try:
                    answer = await call(sent, metadata=bearer(bearer_token) if bearer_token else (), timeout=30)
                except grpc.aio.AioRpcError as exc:
                    return f"grpc-status {exc.code().value[0]} ({exc.code().name}): {exc.details()}"
            return "" if first_execution else same_answer(expected, answer)

        if problem := await check():
            raise SystemExit(f"{label}: {problem}")
        if spread or request_id_field:
            return grpc_load.Request(addr, method, spread or (body,), bearer_token, request_id_field), check
        return h2load.grpc_request(addr, method, body, expected[0], bearer_token), check

    return Row(label, kind, pids, prepare)


def peer_row(label: str, pids: list[int], url: str, token: Token) -> Row:
    """The FastAPI peer: HTTP 200 and the same JSON every time."""
    expected: list[bytes] = []

    async def prepare() -> tuple[Load, Check]:
        headers = {"authorization": f"Bearer {await token()}"}

        def get() -> tuple[int, bytes]:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
                return response.status, response.read()

        async def check() -> str:
            status, body = await asyncio.to_thread(get)
            return f"HTTP {status}" if status != 200 else same_answer(expected, body)

        if problem := await check():
            raise SystemExit(f"{label}: {problem}")
        headers_list = tuple(f"{k}: {v}" for k, v in headers.items())
        return h2load.Request(url, headers_list, None, len(expected[0]), http1=True), check

    return Row(label, "peer", pids, prepare)


def load(binary: str, request: Load, concurrency: int, *, count: int = 0, seconds: float = 0) -> h2load.Result:
    """`count` requests, or as many as fit in `seconds`, by the request's client,
    `concurrency` at a time over CONNECTIONS."""
    if isinstance(request, grpc_load.Request):
        return grpc_load.run(request, concurrency=concurrency, connections=CONNECTIONS, count=count, seconds=seconds)
    return h2load.run(binary, request, concurrency=concurrency, connections=CONNECTIONS, count=count, seconds=seconds)


async def measure(binary: str, row: Row, seconds: float, concurrency: int) -> None:
    """One round: a timed warm-up, then a counted run of about `seconds` (sized
    from the rate seen so far), with the server CPU it used and the checks around it."""
    request, check = await row.prepare()
    warm = load(binary, request, concurrency, seconds=max(1.0, seconds / 5))
    count = max(concurrency * 2, int((row.rate or warm.requests_per_second) * seconds))
    pids = process_tree(row.pids)
    cpu_before, database_before = cpu_seconds(pids), postgres_cpu()
    result = load(binary, request, concurrency, count=count)
    cpu_used, database_used = cpu_seconds(pids) - cpu_before, cpu_since(database_before, postgres_cpu())
    row.rates.append(result.requests_per_second)
    row.cpu_us.append(cpu_used / max(1, result.succeeded) * 1e6)
    row.database_cpu_us.append(database_used / max(1, result.succeeded) * 1e6)
    for problem in (warm.problem, result.problem, await check()):
        if problem:
            row.problems.append(problem)


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "-"


def verdicts(rate: float, limit: float, peer: float) -> str:
    """A Parley rate's ratios to the limit and to the peer against the issue's targets."""
    vs_limit, vs_peer = rate / limit, rate / peer
    limit_ok = "ok" if vs_limit >= TARGET_VS_LIMIT else "MISSED"
    peer_ok = "ok" if vs_peer >= TARGET_VS_PEER else "MISSED"
    return (
        f"{vs_limit:.2f}x the limit (target >= {TARGET_VS_LIMIT}: {limit_ok}), "
        f"{vs_peer:.2f}x the peer (target >= {TARGET_VS_PEER:g}: {peer_ok})"
    )


def print_table(title: str, rows: list[Row]) -> None:
    limit = next(r.rate for r in rows if r.kind == "limit")
    peer = next(r.rate for r in rows if r.kind == "peer")
    print(f"\n== {title}")
    print(
        f"{'target':<52} {'req/s':>8} {'CPU us/req':>10} {'PG us/req':>9} {'vs limit':>8} {'vs peer':>8}  "
        "rounds (req/s)"
    )
    for row in rows:
        rounds = " ".join(f"{r:,.0f}" for r in row.rates)
        print(
            f"{row.label:<52} {row.rate:>8,.0f} {row.cpu:>10,.0f} {row.database_cpu:>9,.0f} "
            f"{ratio(row.rate, limit):>8} {ratio(row.rate, peer):>8}  {rounds}"
        )
    print("  (CPU: the target's processes; PG: every PostgreSQL process's, per request)")
    for row in rows:
        if row.kind == "parley":
            print(f"  {row.label}: {verdicts(row.rate, limit, peer)}")
    for row in rows:
        if row.kind == "client":
            print(
                f"  (CreateMessage's client, grpc_load.mjs, reached {ratio(row.rate, limit)}x h2load's rate on the "
                "limit: its ratios are low rather than high)"
            )
    for row in rows:
        for problem in row.problems:
            print(f"  !! {row.label}: {problem}")


def print_overhead(pairs: list[tuple[Row, Row]]) -> None:
    """Each RPC with metrics on against the same with metrics off."""
    print(f"\n-- metrics on / off (target: on costs at most {TARGET_METRICS_OVERHEAD:.0%})")
    for off, on in pairs:
        rate = on.rate / off.rate if off.rate else 0.0
        cpu = on.cpu / off.cpu if off.cpu else 0.0
        verdict = "ok" if rate >= 1 - TARGET_METRICS_OVERHEAD and cpu <= 1 + TARGET_METRICS_OVERHEAD else "MISSED"
        rounds = " ".join(f"{a / b:.2f}" for a, b in zip(on.rates, off.rates, strict=True) if b)
        print(f"  {off.label}: req/s {rate:.3f}x, CPU per request {cpu:.3f}x ({verdict}); per round req/s {rounds}")


class Scraper:
    """Fetch a metrics endpoint every interval until stopped, as Prometheus would;
    a failed scrape is a problem of the run."""

    def __init__(self, addr: str, interval: float) -> None:
        self._url = f"http://{addr}/metrics"
        self._interval = interval
        self._stop = threading.Event()
        self.scrapes = 0
        self.problems: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with urllib.request.urlopen(self._url, timeout=10) as response:
                    if b"grpc_server_handled_total" not in response.read():
                        self.problems.append("a scrape had no grpc_server_handled_total")
                self.scrapes += 1
            except OSError as exc:
                self.problems.append(f"scrape failed: {exc}")


def slug(label: str) -> str:
    """A file name for the profile of label."""
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")


async def profile(args: argparse.Namespace, binary: str, workers: int, rows: list[Row], server: ServerProcess) -> None:
    """One more round per Parley RPC under py-spy (not counted in the figures)."""
    pid = server.process.pid  # type: ignore[union-attr]
    directory = Path(args.profile)
    for row in rows:
        if row.kind != "parley":
            continue
        path = directory / f"unary-w{workers}-{slug(row.label)}.txt"
        request, _ = await row.prepare()
        pids = process_tree([pid])
        cpu_before = cpu_seconds(pids)
        with Recording(pid, path):
            result = load(binary, request, args.concurrency, count=int(row.rate * args.seconds))
        cpu_us = (cpu_seconds(pids) - cpu_before) / max(1, result.succeeded) * 1e6
        print("\n" + summary(path, f"profile of {row.label}, --workers {workers}", cpu_us, "request"))


class Tokens:
    """A fresh access token per round: a long run outlives a token's TTL."""

    def __init__(self, addr: str) -> None:
        self._addr = addr

    def of(self, email: str) -> Token:
        async def fresh() -> str:
            async with grpc.aio.insecure_channel(self._addr) as channel:
                return await login(channel, email)

        return fresh


async def seed(addr: str, server: ServerProcess, workers: int, writes: int) -> tuple[str, str, str, list[str]]:
    """A reader with 30 conversations and a writer with `writes`; (reader, writer,
    the reader's conversation GetConversation asks for, the writer's conversations).

    Concurrent writes go to conversations of their own, as many users' would:
    messages added to one conversation take turns on its row.
    """
    reader, writer = f"reader-w{workers}@bench.test", f"writer-w{workers}@bench.test"
    for email in (reader, writer):
        await create_user(server, email)
    async with grpc.aio.insecure_channel(addr) as channel:
        read_ids = await create_conversations(channel, await login(channel, reader), CONVERSATIONS)
        write_ids = await create_conversations(channel, await login(channel, writer), writes)
    return reader, writer, read_ids[0], write_ids


async def bench_workers(args: argparse.Namespace, workers: int, binary: str, url: str, secret: str, tmp: Path) -> bool:
    """Every target with `workers` processes; True when every round checked out."""
    limit_addr, peer_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with contextlib.ExitStack() as stack:
        server = ServerProcess(
            tmp / f"parley-w{workers}",
            args=("--no-envoy", "--workers", str(workers)),
            DATABASE_URL=url,
            PARLEY_JWT_SECRET=secret,
            PARLEY_DB_POOL_SIZE=str(POOL_SIZE // workers),
        ).start()
        stack.callback(server.terminate)
        metered: ServerProcess | None = None
        if args.metrics:
            metrics_addr = f"127.0.0.1:{free_port()}"
            metered = ServerProcess(
                tmp / f"parley-metrics-w{workers}",
                args=("--no-envoy", "--workers", str(workers)),
                DATABASE_URL=url,
                PARLEY_JWT_SECRET=secret,
                PARLEY_DB_POOL_SIZE=str(POOL_SIZE // workers),
                PARLEY_METRICS_ADDR=metrics_addr,
            ).start()
            stack.callback(metered.terminate)
            scraper = stack.enter_context(Scraper(metrics_addr, SCRAPE_INTERVAL_SECONDS))
        reader, writer, read_id, write_ids = await seed(server.addr, server, workers, args.concurrency)
        tokens = Tokens(server.addr)
        # The peer checks the claims Parley's tokens carry.
        claims = jwt.decode(await tokens.of(reader)(), options={"verify_signature": False})
        limit = Target(
            python_module("benchmarks.bare_grpc", "health", "--addr", limit_addr),
            grpc_ready(limit_addr),
            tmp / f"limit-w{workers}.log",
            copies=workers,
        ).start()
        stack.callback(limit.stop)
        peer_env = {
            "PEER_DATABASE_URL": url,
            "PEER_SCHEMA": DEFAULT_DB_SCHEMA,
            "PEER_JWT_SECRET": secret,
            "PEER_JWT_ISSUER": claims["iss"],
            "PEER_JWT_AUDIENCE": claims["aud"],
            "PEER_POOL_SIZE": str(POOL_SIZE // workers),
        }
        host, port = peer_addr.rsplit(":", 1)
        peer_command = python_module(
            "uvicorn", "benchmarks.fastapi_peer:app", "--host", host, "--port", port, "--workers", str(workers)
        )
        peer = Target(peer_command, http_ready(f"http://{peer_addr}/"), tmp / f"peer-w{workers}.log", env=peer_env)
        stack.callback(peer.start().stop)

        parley_pids = [server.process.pid]  # type: ignore[union-attr]
        get = conversation_pb2.GetConversationRequest(conversation_id=read_id).SerializeToString()
        page = conversation_pb2.ListConversationsRequest(page_size=PAGE_SIZE).SerializeToString()
        health = health_pb2.HealthCheckRequest().SerializeToString()
        # Parley's RPCs: (label, method, request), each measured on `server` (and on `metered`).
        calls = [
            ("Parley GetConversation", "GetConversation", get),
            (f"Parley ListConversations, first page ({PAGE_SIZE})", "ListConversations", page),
        ]
        rows = [
            grpc_row("limit: bare grpc.aio health Check", "limit", limit.pids, limit_addr, HEALTH_CHECK, health, None),
            peer_row(
                "peer: FastAPI GET /conversations/{id}",
                peer.pids,
                f"http://{peer_addr}/conversations/{read_id}",
                tokens.of(reader),
            ),
        ]
        pairs: list[tuple[Row, Row]] = []  # (metrics off, metrics on)
        for label, method, body in calls:
            off = grpc_row(
                label, "parley", parley_pids, server.addr, CONVERSATION_SERVICE + method, body, tokens.of(reader)
            )
            rows.append(off)
            if metered is not None:
                metered_pids = [metered.process.pid]  # type: ignore[union-attr]
                on_label = label + ", metrics on"
                on = grpc_row(
                    on_label,
                    "parley",
                    metered_pids,
                    metered.addr,
                    CONVERSATION_SERVICE + method,
                    body,
                    tokens.of(reader),
                )
                pairs.append((off, on))
        rows += [on for _, on in pairs]
        create = CONVERSATION_SERVICE + "CreateMessage"
        firsts = tuple(message_request(write_id, 1).SerializeToString() for write_id in write_ids)
        replays = tuple(message_request(write_id, 0, str(uuid.uuid4())).SerializeToString() for write_id in write_ids)
        rows += [
            grpc_row(
                "limit, by grpc_load.mjs (CreateMessage's client)",
                "client",
                limit.pids,
                limit_addr,
                HEALTH_CHECK,
                health,
                None,
                spread=(health,),
            ),
            # A request_id of the client's own for every call: each is a first execution.
            grpc_row(
                "Parley CreateMessage, a new request_id each",
                "parley",
                parley_pids,
                server.addr,
                create,
                firsts[0],
                tokens.of(writer),
                spread=firsts,
                request_id_field=conversation_pb2.CreateMessageRequest.REQUEST_ID_FIELD_NUMBER,
                first_execution=lambda: message_request(write_ids[0], 1, str(uuid.uuid4())).SerializeToString(),
            ),
            # One request_id per conversation: the first check executes the first one, the rest replay.
            grpc_row(
                "Parley CreateMessage, replays of a request_id",
                "parley",
                parley_pids,
                server.addr,
                create,
                replays[0],
                tokens.of(writer),
                spread=replays,
            ),
        ]
        for number in range(args.rounds):
            # Parley's rows run in reverse order every other round: neither side
            # of an on/off pair always runs first (after the same neighbour).
            order = rows if number % 2 == 0 else rows[:2] + rows[:1:-1]
            for row in order:
                await measure(binary, row, args.seconds, args.concurrency)
            print(f"round {number + 1}/{args.rounds}: " + ", ".join(f"{r.rates[-1]:,.0f}" for r in rows), flush=True)
        print_table(
            f"--workers {workers}: bare grpc.aio ({workers} process{'es' if workers > 1 else ''}), FastAPI on "
            f"uvicorn ({workers} worker{'s' if workers > 1 else ''}), parley serve --workers {workers}; "
            f"database pool {POOL_SIZE // workers} per process; h2load (CreateMessage: grpc_load.mjs), "
            f"{args.concurrency} calls in flight, "
            f"median of {args.rounds} round(s) of ~{args.seconds:g} s",
            rows,
        )
        if pairs:
            print_overhead(pairs)
            print(f"  ({scraper.scrapes} scrapes of the metrics endpoint during the run)")
            for problem in scraper.problems:
                print(f"  !! {problem}")
            pairs[0][1].problems.extend(scraper.problems)  # they fail the run

        if args.profile:
            await profile(args, binary, workers, rows, server)
        return not any(row.problems for row in rows)


async def main_async(args: argparse.Namespace) -> int:
    binary = h2load.ensure_h2load()
    ok = True
    secret = secrets.token_urlsafe(48)
    with fresh_database_url() as url, tempfile.TemporaryDirectory() as tmp:
        print(f"PostgreSQL: {describe()}")
        for workers in args.workers:
            ok = await bench_workers(args, workers, binary, url, secret, Path(tmp)) and ok
    if not ok:
        print("\nsome rounds failed their checks (see !! above)")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="processes per target, one run each")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per target (the median is reported)")
    parser.add_argument("--seconds", type=float, default=6, help="length of one target's round")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--profile", metavar="DIR", help="also record a py-spy profile of Parley per RPC into DIR")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="also measure Parley with its Prometheus endpoint on (scraped every second) and print on/off ratios",
    )
    parser.add_argument("--quick", action="store_true", help="CI: --workers 1, one round of ~2 s")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.rounds, args.seconds = [1], 1, 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
