"""`parley serve --workers N`: N server processes sharing one port.

gRPC Core does not survive fork, so the parent creates no gRPC object at all:
it resolves the database (starting the embedded one if needed), applies
migrations, forks the workers, and only then starts its own event loop to
supervise them and to run the bridge (the web page and Envoy in front of the
shared port; they need no gRPC). Each worker builds its own event loop, App
and server, listening with SO_REUSEPORT so the kernel spreads connections
across them. Replicas cooperate through
PostgreSQL (events, generation ownership), exactly as on separate machines.
With PARLEY_METRICS_ADDR set, the workers record their metrics into files of
one directory and the parent serves them summed (metrics/endpoint.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import SecretStr

from parley_server.bridge.envoy import Bridge, run_bridge_until_stopped
from parley_server.bridge.envoy_config import UpstreamTls
from parley_server.metrics import endpoint
from parley_server.settings import ConfigError, Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


def serve_in_workers(
    settings: Settings,
    address: str,
    workers: int,
    *,
    prepare: Callable[[Settings], str],
    run_worker: Callable[[Settings], int],
    with_envoy: bool,
) -> int:
    """Fork `workers` processes running `run_worker`; returns the worst exit code.

    `prepare` resolves and migrates the database in the parent and returns
    its URL, which every worker then uses as DATABASE_URL. With Envoy, the
    parent runs the bridge (page and Envoy) in front of the shared port.
    """
    if address.rsplit(":", 1)[-1] == "0":
        raise ConfigError("--workers needs a fixed port: several processes must bind the same one")
    if with_envoy:
        UpstreamTls.from_settings(settings)  # a ConfigError now, before anything starts
    with _metrics_shared(settings):
        # Resolved once here, so every worker signs and checks tokens with one secret.
        shared = settings.model_copy(
            update={"database_url": prepare(settings), "jwt_secret": SecretStr(settings.resolved_jwt_secret())}
        )
        children: list[int] = []
        for index in range(workers):
            pid = os.fork()
            if pid == 0:  # the worker: a fresh process image as far as gRPC is concerned
                code = 1
                _die_with_parent()
                # A reload asked for while the worker starts must not kill it (SIGHUP's
                # default); it reads the certificates as it starts anyway.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                try:
                    code = run_worker(shared)
                except BaseException:  # os._exit below would swallow it silently
                    log.exception("worker %d failed", index + 1)
                finally:
                    logging.shutdown()  # the exit handlers os._exit skips: RPC lines still due (common/logs.py)
                    os._exit(code)
            log.info("worker %d started (pid %d)", index + 1, pid)
            children.append(pid)
        bridge = Bridge(shared, int(address.rsplit(":", 1)[1])) if with_envoy else None
        return asyncio.run(_supervise(children, bridge, settings.metrics_addr))


@contextlib.contextmanager
def _metrics_shared(settings: Settings) -> Iterator[None]:
    """With metrics on, have this process and its workers record them in a
    fresh directory (before anything is recorded: `prepare` opens pools),
    removed at the end."""
    if settings.metrics_addr is None:
        yield
        return
    directory = Path(tempfile.mkdtemp(prefix="parley-metrics-"))
    try:
        endpoint.share_between_processes(directory)
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _supervise(children: list[int], bridge: Bridge | None, metrics_addr: str | None) -> int:
    """Wait for the workers; forward SIGINT/SIGTERM, and SIGHUP (reload the
    TLS certificates), to them; if one dies, or Envoy does, stop the rest.
    Envoy stops last, once the workers have drained. With metrics_addr, serve
    every worker's metrics meanwhile."""
    metrics = await endpoint.serve(metrics_addr) if metrics_addr is not None else None
    try:
        return await _wait_for_workers(children, bridge)
    finally:
        if metrics is not None:
            await metrics.stop()


async def _wait_for_workers(children: list[int], bridge: Bridge | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    alive = set(children)
    loop.add_signal_handler(signal.SIGHUP, _signal_all, alive, signal.SIGHUP)
    worst = 0
    bridge_result: asyncio.Task[int] | None = None
    if bridge is not None:
        bridge_result = asyncio.create_task(run_bridge_until_stopped(bridge, stop))
    stopping = False
    try:
        while alive:
            if bridge_result is not None and bridge_result.done():
                code, bridge_result = bridge_result.result(), None
                worst = max(worst, code)
                if code:  # Envoy is gone (or never came up): the service is not whole
                    stop.set()
            if stop.is_set():
                _signal_all(alive, signal.SIGTERM)
                stop.clear()
                stopping = True
            worst = max(worst, await _reap(alive, stopping))
    finally:
        if bridge_result is not None:
            stop.set()
            await bridge_result
        if bridge is not None:
            await bridge.stop()
    return worst


async def _reap(alive: set[int], stopping: bool) -> int:
    """Wait a moment, then collect exited workers; returns their worst exit code.

    Once the workers were told to stop, one that died of that SIGTERM was
    still starting (it installs its graceful handler only when it serves, so
    it had nothing in flight): it stopped as asked, which is no failure of its
    own. The exit code then says why Parley stopped, not how fast each worker
    had started.
    """
    worst = 0
    await asyncio.sleep(POLL_SECONDS)
    for pid in list(alive):
        done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: returns at once)
        if done == 0:
            continue
        alive.discard(pid)
        endpoint.forget_process(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping and code == -signal.SIGTERM:
            log.info("worker %d stopped before it was serving", pid)
            code = 0
        worst = max(worst, abs(code))
        if code != 0 and alive:
            log.error("worker %d exited with %d; stopping the others", pid, code)
            _signal_all(alive, signal.SIGTERM)
    return worst


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies, even by SIGKILL, so no worker
    is left serving the port with nobody supervising it."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
