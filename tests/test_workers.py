"""`parley serve --workers 2`: two processes on one port, each serving."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from tests.served import ServerProcess, grpc_serving, start
from tests.test_envoy import EMPTY_FRAME, GRPC_WEB, http


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path, database_url: str) -> None:
    server = ServerProcess(tmp_path, args=("--no-envoy", "--workers", "2"), DATABASE_URL=database_url).start()
    try:
        assert server.process is not None
        workers = _children(server.process.pid)
        assert len(workers) == 2, server.log()
        port = int(server.addr.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while _listening_sockets(port) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the second worker may still be starting
        assert _listening_sockets(port) == 2, "each worker must bind the port itself (SO_REUSEPORT)"
        for _ in range(6):  # every new connection is served, whichever worker gets it
            assert grpc_serving(server.addr)
        assert server.terminate() == 0
        time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
    finally:
        server.kill()


def test_workers_serve_grpc_web_behind_one_envoy_that_stops_last(tmp_path: Path) -> None:
    served = start(tmp_path, "--workers", "2")
    try:
        envoy_pid = _envoy_pid(served.log.read_text())
        workers = _children(served.process.pid)
        assert len(workers) == 2, workers
        for _ in range(4):  # new connections from Envoy reach whichever worker; all answer
            status, _, body = http(
                f"{served.web_url}/grpc.health.v1.Health/Check", method="POST", headers=GRPC_WEB, body=EMPTY_FRAME
            )
            assert status == 200 and b"grpc-status:0" in body
        assert http(served.web_url + "/")[0] == 200  # the page, not Envoy's 404
    finally:
        code = served.stop()
    assert code == 0, served.log_tail()
    assert not _alive(envoy_pid) and not any(_alive(pid) for pid in workers)
    log = served.log.read_text()
    assert log.rindex("shutting down") < log.index("caught ENVOY_SIGTERM"), "workers drain before Envoy stops"


def test_workers_stop_with_exit_code_1_when_envoy_dies(tmp_path: Path) -> None:
    served = start(tmp_path, "--workers", "2")
    workers = _children(served.process.pid)
    os.kill(_envoy_pid(served.log.read_text()), signal.SIGKILL)
    served.process.wait(timeout=60)
    assert served.stop() == 1
    assert "Envoy exited unexpectedly" in served.log.read_text()
    assert not any(_alive(pid) for pid in workers)


def _envoy_pid(log: str) -> int:
    match = re.search(r"Envoy \(pid (\d+)\)", log)
    assert match, log
    return int(match.group(1))


def _children(pid: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(p) == pid and "parley" in _cmdline(p)
        ]
        if len(found) >= 2:
            return found
        time.sleep(0.2)
    return []


def _listening_sockets(port: int) -> int:
    """LISTEN entries for port in /proc/net/tcp{,6}: one per SO_REUSEPORT socket."""
    lines = [line for table in ("tcp", "tcp6") for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIG_DFL)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in (Path(f"/proc/{pid}/stat").read_text().split()[2])
