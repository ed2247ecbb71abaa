"""Run `parley serve` as a real child process, for tests that need processes
(several replicas on one database, SIGKILL mid-generation, the README flow)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `parley serve` child; `addr` is its gRPC address."""

    def __init__(self, data_dir: Path, *, args: tuple[str, ...] = ("--no-envoy",), **env: str) -> None:
        self.data_dir = data_dir
        self.addr = f"127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "PARLEY_DATA_DIR": str(data_dir),
            "PARLEY_GRPC_ADDR": self.addr,
            "PARLEY_ARGON2_TIME_COST": "1",
            "PARLEY_ARGON2_MEMORY_KIB": "8192",
            "PARLEY_SHUTDOWN_GRACE": "2",
            "PARLEY_PERSIST_INTERVAL_MS": "100",
            **env,
        }
        self.args = args
        self.log_path = data_dir / f"serve-{self.addr.rsplit(':', 1)[1]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "parley"), "serve", *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"parley serve exited early:\n{self.log()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"parley serve did not become healthy:\n{self.log()}")

    def healthy(self) -> bool:
        with grpc.insecure_channel(self.addr) as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
