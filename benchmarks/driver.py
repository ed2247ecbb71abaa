"""A closed-loop grpc.aio load client, for what h2load cannot do.

h2load sends one body over and over and reports no latency percentiles. This
client sends a mix of calls and keeps every call's latency
(scripts/bench_mixed.py). It is Python, so it needs CPU of its own: it runs
in separate processes (spawned: no gRPC state inherited), sends
pre-serialised bytes and parses nothing it gets back.

Each client is one task calling in a loop. Client k starts at calls[k % n]
and takes the next call of the list each time, so a mix of calls is spread
evenly over time and clients.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import grpc

from benchmarks.connections import own_connection

# Clients per connection: real callers are many connections, and several
# let SO_REUSEPORT spread them over a server's --workers.
CLIENTS_PER_CHANNEL = 8


@dataclass(frozen=True)
class Call:
    """One kind of unary call: its method, serialised request and bearer token."""

    label: str
    method: str
    body: bytes
    token: str = ""


@dataclass
class Outcome:
    """Calls finished within the measured window, by label."""

    seconds: float = 0.0
    # Every call that succeeded, warm-up included (what the server's CPU time covers).
    completed: int = 0
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    # Failed calls by "label: status code", and the first failure's details of each.
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Outcome) -> None:
        self.seconds = max(self.seconds, other.seconds)
        self.completed += other.completed
        for label, values in other.latencies_ms.items():
            self.latencies_ms.setdefault(label, []).extend(values)
        self.errors.update(other.errors)
        self.examples = {**other.examples, **self.examples}

    def error_lines(self) -> list[str]:
        """Each kind of failure: how many, and the first one's details."""
        return [f"{n} x {key} (first: {self.examples[key]})" for key, n in self.errors.items()]

    def rate(self, label: str | None = None) -> float:
        """Calls per second, of one label or of all."""
        counted = [len(v) for k, v in self.latencies_ms.items() if label in (None, k)]
        return sum(counted) / self.seconds if self.seconds else 0.0

    def percentile(self, label: str, p: int) -> float:
        values = self.latencies_ms.get(label, [])
        if len(values) < 2:
            return values[0] if values else 0.0
        return statistics.quantiles(values, n=100)[p - 1]


async def _drive(addr: str, calls: list[Call], clients: range, warm_up: float, seconds: float) -> Outcome:
    channels = [own_connection(addr) for _ in range(-(-len(clients) // CLIENTS_PER_CHANNEL))]
    # Bytes in, bytes out: no serialisation on the client's side.
    methods: list[list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]]] = [
        [ch.unary_unary(c.method, request_serializer=None, response_deserializer=None) for c in calls]
        for ch in channels
    ]
    metadata = [(("authorization", f"Bearer {c.token}"),) if c.token else () for c in calls]
    outcome = Outcome(seconds=seconds)
    started = time.monotonic()
    measure_from, stop_at = started + warm_up, started + warm_up + seconds

    async def client(k: int) -> None:
        stubs = methods[k % len(channels)]
        n = k
        while (now := time.monotonic()) < stop_at:
            i = n % len(calls)
            n += 1
            try:
                await stubs[i](calls[i].body, metadata=metadata[i], timeout=60)
            except grpc.aio.AioRpcError as exc:
                key = f"{calls[i].label}: {exc.code().name}"
                outcome.errors[key] += 1
                outcome.examples.setdefault(key, str(exc.details()))
                continue
            done = time.monotonic()
            outcome.completed += 1
            if now >= measure_from and done <= stop_at:
                outcome.latencies_ms.setdefault(calls[i].label, []).append((done - now) * 1000)

    try:
        await asyncio.gather(*(client(k) for k in clients))
    finally:
        for channel in channels:
            await channel.close()
    return outcome


def _process(addr: str, calls: list[Call], clients: range, warm_up: float, seconds: float, start_at: float) -> Outcome:
    """One client process: clients k in `clients` (numbered across all processes)."""
    time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(_drive(addr, calls, clients, warm_up, seconds))


def drive(
    addr: str,
    calls: list[Call],
    *,
    clients: int,
    processes: int,
    seconds: float,
    warm_up: float = 1.0,
) -> Outcome:
    """Run `clients` closed-loop clients over `processes` processes, all starting
    together, for warm_up + seconds; the calls finished in the last `seconds`."""
    context = multiprocessing.get_context("spawn")
    bounds = [clients * k // processes for k in range(processes + 1)]
    shares = [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    outcome = Outcome()
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        start_at = time.time() + 2 + processes  # once every process has started
        parts = [pool.submit(_process, addr, calls, share, warm_up, seconds, start_at) for share in shares if share]
        for part in parts:
            outcome.merge(part.result())
    return outcome
