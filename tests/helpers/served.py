"""Real `parley serve` processes for tests and benchmarks.

Two shapes, one set of helpers (ports, environment, readiness):
- `start` / `start_served`: a whole installation as a user runs it, with or
  without Envoy, on a fresh database (its own embedded PostgreSQL, or a new
  database on the DATABASE_URL server, dropped afterwards); also driven with
  grpcurl, as the README does.
- `ServerProcess`: a replica on a database the caller names, which a test
  may SIGKILL and start again (several replicas, crash and restart).
Every process gets its own data directory and free ports, so tests never
collide with each other, with earlier runs, or with a developer's Parley.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2
from sqlalchemy.engine import make_url

from parley_server.db.database import normalise_url
from tests.helpers.health import health_stub

BIN = Path(sys.executable).parent
START_TIMEOUT_SECONDS = 90


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port that is free now and that the kernel will not hand out on its own.

    A port from `bind(0)` comes from the ephemeral range, so between the check
    and the server's bind any outgoing connection (a database client, Envoy's
    upstream) may take it. Ports below that range are only ever taken by name.
    """
    low, _ = _ephemeral_range()
    while True:
        port = random.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def run_parley(env: dict[str, str], *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """A `parley` CLI command (create-admin, outbox, ...) against a served process's environment."""
    return subprocess.run(
        [str(BIN / "parley"), *args], env={**env, **extra_env}, capture_output=True, text=True, timeout=120
    )


class Served:
    """A running `parley serve`: its environment, addresses, process and log."""

    def __init__(
        self, env: dict[str, str], process: subprocess.Popen[bytes], log: Path, cleanup: Callable[[], None]
    ) -> None:
        self.env = env
        self.process = process
        self.log = log
        self._cleanup = cleanup
        self.addr = env["PARLEY_GRPC_ADDR"]
        self.envoy_addr = env["PARLEY_ENVOY_ADDR"]
        self.admin_addr = env["PARLEY_ENVOY_ADMIN_ADDR"]

    @property
    def web_url(self) -> str:
        return f"http://{self.envoy_addr}"

    def parley(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_parley(self.env, *args, **env)

    def grpcurl(
        self, *args: str, data: dict[str, object] | None = None, token: str = "", headers: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """grpcurl against the gRPC port, with reflection (no proto files), as the README does;
        headers are "name: value" lines."""
        command = [str(BIN / "grpcurl"), "-plaintext"]
        if token:
            command += ["-H", f"authorization: Bearer {token}"]
        for header in headers:
            command += ["-H", header]
        if data is not None:
            command += ["-d", json.dumps(data)]
        return subprocess.run([*command, self.addr, *args], capture_output=True, text=True, timeout=60)

    def call(self, method: str, data: dict[str, object], token: str = "") -> dict[str, object]:
        """One successful grpcurl call's JSON answer."""
        result = self.grpcurl(method, data=data, token=token)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout or "{}"))

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM (kill after 30 s), drop its database; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        self._cleanup()
        return code


def _in_thread(work: Callable[[], object]) -> None:
    """Run blocking asyncio work off the test's event loop (pytest-asyncio owns that one)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def fresh_database() -> tuple[dict[str, str], Callable[[], None]]:
    """Environment for a fresh database and the function that drops it.
    Without DATABASE_URL: no variable, so `parley serve` embeds PostgreSQL
    in its fresh data dir."""
    external = os.environ.get("DATABASE_URL")
    if not external:
        return {}, lambda: None
    url = make_url(normalise_url(external))
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"parley_served_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    _in_thread(lambda: asyncio.run(execute(f'CREATE DATABASE "{name}"')))
    env = {"DATABASE_URL": url.set(database=name).render_as_string(hide_password=False)}
    return env, lambda: _in_thread(lambda: asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))


def serve_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a served process: free ports, cheap Argon2, embedded
    PostgreSQL in data_dir unless overrides name a DATABASE_URL."""
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {
        **base,
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_ENVOY_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_ENVOY_ADMIN_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_ARGON2_TIME_COST": "1",
        "PARLEY_ARGON2_MEMORY_KIB": "8192",
        "PARLEY_SHUTDOWN_GRACE_SECONDS": "2",
        **overrides,
    }


def grpc_serving(addr: str, credentials: grpc.ChannelCredentials | None = None) -> bool:
    """Whether the server at addr answers SERVING (over TLS with credentials)."""
    try:
        with grpc.secure_channel(addr, credentials) if credentials else grpc.insecure_channel(addr) as channel:
            response = health_stub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def envoy_ready(admin_addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{admin_addr}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(
    data_dir: Path,
    *args: str,
    envoy: bool = True,
    parley: Path = BIN / "parley",
    cwd: Path | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    **env: str,
) -> Served:
    """Start `parley serve` and return once gRPC (and Envoy) are ready; fail with its log if not.
    `parley` and `cwd` run another installation (an installed wheel) from elsewhere;
    `credentials` reach a server with TLS."""
    return start_with_env(data_dir, env, *args, envoy=envoy, parley=parley, cwd=cwd, credentials=credentials)


def start_with_env(
    data_dir: Path,
    env: Mapping[str, str],
    *args: str,
    envoy: bool = True,
    parley: Path = BIN / "parley",
    cwd: Path | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> Served:
    """`start` with the environment's overrides given as one mapping, which `**` into
    `start` could not tell from its own keywords."""
    database_env, drop_database = fresh_database()
    full_env = serve_env(data_dir, **database_env, **env)
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(parley), "serve", *args, *([] if envoy else ["--no-envoy"])],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    served = Served(full_env, process, log, drop_database)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            served.stop()
            pytest.fail(f"parley serve exited early ({process.returncode}):\n{served.log_tail()}")
        # With Envoy, also wait for parley's own "Envoy (pid N) serving" line:
        # Envoy can answer /ready a moment before its supervisor says so.
        if grpc_serving(served.addr, credentials) and (
            not envoy or (envoy_ready(served.admin_addr) and "Envoy (pid" in log.read_text(errors="replace"))
        ):
            return served
        time.sleep(0.2)
    process.kill()
    served.stop()
    pytest.fail(f"parley serve was not ready in {START_TIMEOUT_SECONDS} s:\n{served.log_tail()}")


def start_served(data_dir: Path, *, envoy: bool = True, **env: str) -> Iterator[Served]:
    """For fixtures: start, yield, and always stop (SIGTERM, then kill)."""
    served = start_with_env(data_dir, env, envoy=envoy)
    try:
        yield served
    finally:
        served.stop()


class ServerProcess:
    """One `parley serve` replica on the database its env names (embedded in
    data_dir without DATABASE_URL); `addr` is its gRPC address. It may be
    killed and another started on the same database."""

    def __init__(self, data_dir: Path, *, args: tuple[str, ...] = ("--no-envoy",), **env: str) -> None:
        self.data_dir = data_dir
        # Streaming text is persisted every 100 ms (not 500): crash tests wait less.
        self.env = serve_env(data_dir, **{"PARLEY_PERSIST_INTERVAL_MS": "100", **env})
        self.addr = self.env["PARLEY_GRPC_ADDR"]
        self.args = args
        self.log_path = data_dir / f"serve-{self.addr.rsplit(':', 1)[1]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "parley"), "serve", *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"parley serve exited early:\n{self.log()}")
            if grpc_serving(self.addr):
                return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"parley serve did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def parley(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_parley(self.env, *args, **env)
