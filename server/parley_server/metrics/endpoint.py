"""The Prometheus endpoint (`PARLEY_METRICS_ADDR`), and metrics shared by `--workers` processes.

One process serves its own metrics (and prometheus_client's process and
garbage-collector metrics) from memory. With `parley serve --workers N`, every
worker records into files of prometheus_client's multiprocess mode, in a
directory the supervising parent creates before it forks them, and the parent
alone serves the endpoint, summing the workers' files: one scrape sees every
worker. Counters of a worker that exited stay in the sums (its requests did
happen); its gauges are dropped (`forget_process`).

The endpoint is prometheus_client's own HTTP server, on a thread of its own,
like the web page's server (bridge/web.py): a scrape renders the text off the
event loop, which only pays for the increments.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server, values
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


@dataclass
class Endpoint:
    """A running /metrics endpoint."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def serve(address: str) -> Endpoint:
    """Serve the metrics on `address` (host:port): this process's, or every worker's when shared."""
    host, port = split_host_port(address)
    registry = REGISTRY
    if _shared is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(_shared))
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {address} (PARLEY_METRICS_ADDR): {exc.strerror or exc}") from None
    log.info("Prometheus metrics on http://%s:%d/metrics", address.rsplit(":", 1)[0], server.server_port)
    return Endpoint(server, thread)
