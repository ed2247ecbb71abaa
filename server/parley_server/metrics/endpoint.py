"""The Prometheus endpoint (`PARLEY_METRICS_ADDR`), and metrics shared by `--workers` processes.

One process serves its own metrics (and prometheus_client's process and
garbage-collector metrics) from memory. With `parley serve --workers N`, every
worker records into files of prometheus_client's multiprocess mode, in a
directory the supervising parent creates before it forks them, and the parent
alone serves the endpoint, summing the workers' files: one scrape sees every
worker. Counters of a worker that exited stay in the sums (its requests did
happen); its gauges are dropped (`forget_process`).

The endpoint is a small HTTP server on the event loop, answering GET /metrics
with prometheus_client's text. Not prometheus_client's own server: that
renders each scrape on a thread, and while the event loop was busy, the two
threads handing the GIL back and forth cost the process about 14% more CPU
per request with a scrape every second (scripts/bench_unary.py --metrics);
on the loop a scrape costs its few milliseconds of rendering, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from parley_server.metrics.definitions import ALL
from parley_server.settings import share_metrics_through, split_host_port

log = logging.getLogger(__name__)

_shared: Path | None = None


def share_between_processes(directory: Path) -> None:
    """Record every metric in files under `directory` (an empty one), from now on.

    For the parent of `--workers`, before it forks and before anything is
    recorded. prometheus_client picks how it stores samples when it is first
    imported, from PROMETHEUS_MULTIPROC_DIR; Parley's modules import it long
    before the command line says whether workers will run, so the choice is
    made again here, with the variable set (the files are named after it).
    """
    global _shared
    if any(family.samples for metric in ALL for family in metric.collect()):
        raise RuntimeError("metrics were recorded before they were shared between processes")
    share_metrics_through(directory)
    values.ValueClass = values.MultiProcessValue()
    _shared = directory


def shared_between_processes() -> bool:
    """Whether this process records into shared files (a `--workers` worker or their parent)."""
    return _shared is not None


def forget_process(pid: int) -> None:
    """Drop the gauges of a worker that exited (its counters still count)."""
    if _shared is not None:
        mark_process_dead(pid, str(_shared))


# Longest wait for a scraper's request line and headers.
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_BYTES = 16 * 1024


@dataclass
class Endpoint:
    """A running /metrics endpoint."""

    server: asyncio.Server

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def serve(address: str) -> Endpoint:
    """Serve the metrics on `address` (host:port): this process's, or every worker's when shared."""
    host, port = split_host_port(address)
    registry = REGISTRY
    if _shared is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(_shared))

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _answer(registry, reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the scraper went away or sent no proper request: nothing to answer
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(answer, host, port, limit=MAX_REQUEST_BYTES)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {address} (PARLEY_METRICS_ADDR): {exc.strerror or exc}") from None
    endpoint = Endpoint(server)
    log.info("Prometheus metrics on http://%s:%d/metrics", address.rsplit(":", 1)[0], endpoint.port)
    return endpoint


async def _answer(registry: CollectorRegistry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One HTTP/1.x exchange: the metrics for GET /metrics, 404 or 405 otherwise; then the connection closes."""
    async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
        head = await reader.readuntil(b"\r\n\r\n")
    method, _, rest = head.partition(b" ")
    path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
    if path != b"/metrics":
        status, content_type, body = "404 Not Found", "text/plain; charset=utf-8", b"not found: try /metrics\n"
    elif method != b"GET":
        status, content_type, body = "405 Method Not Allowed", "text/plain; charset=utf-8", b"GET only\n"
    else:
        # The text format every Prometheus reads (the names need none of 1.0.0's escaping).
        status, content_type, body = "200 OK", CONTENT_TYPE_PLAIN_0_0_4, generate_latest(registry)
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
