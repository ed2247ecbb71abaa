"""`parley serve --workers 2`: two processes on one port, each serving."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.grpc_web import EMPTY_FRAME, GRPC_WEB, http
from tests.helpers.served import ServerProcess, grpc_serving, start


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


def _children(pid: int, argv_word: str = "serve") -> list[int]:
    """The worker processes forked by the supervisor `pid` (its children whose
    arguments hold argv_word: theirs are the parent's)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(p) == pid and argv_word in _argv(p)
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


def _argv(proc: Path) -> list[str]:
    """A process's arguments: a worker's are the parent's (`parley serve ...`);
    Envoy, the parent's other child, has none that is exactly `serve`, even
    when its paths contain the word."""
    try:
        return (proc / "cmdline").read_text().split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIG_DFL)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in (Path(f"/proc/{pid}/stat").read_text().split()[2])


# The supervisor alone, with workers that only sleep (no handler for SIGTERM,
# like a worker that is still starting), in a process of its own.
SLEEPING_WORKERS = """
import sys, time
from parley_server.settings import Settings
from parley_server.bridge.workers import serve_in_workers

settings = Settings.from_env({"PARLEY_DATA_DIR": sys.argv[1], "PARLEY_JWT_SECRET": "s" * 40})
sys.exit(serve_in_workers(
    settings, "127.0.0.1:1", 2, prepare=lambda _: "postgresql://unused",
    run_worker=lambda _: time.sleep(120) or 0, with_envoy=False,
))
"""


def _sleeping_supervisor(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SLEEPING_WORKERS, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workers = _children(process.pid, argv_word="-c")
    assert len(workers) == 2
    return process, workers


def test_workers_stopped_while_starting_are_a_clean_stop(tmp_path: Path) -> None:
    """SIGTERM to Parley reaches workers that have no handler yet: they die of
    it, and that is the stop that was asked for, so Parley exits 0."""
    process, workers = _sleeping_supervisor(tmp_path)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert not any(_alive(pid) for pid in workers)


def test_a_worker_killed_from_outside_stops_parley_with_its_code(tmp_path: Path) -> None:
    process, workers = _sleeping_supervisor(tmp_path)
    os.kill(workers[0], signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == signal.SIGTERM, output
    assert f"worker {workers[0]} exited with -15; stopping the others" in output
    assert not any(_alive(pid) for pid in workers)
