"""The processes a benchmark measures: start, wait until ready, account, stop.

Every target is a child process of the benchmark (the comparison servers
here, `parley serve` through tests/helpers), on a port of its own, on the
one PostgreSQL of the run. CPU and memory are read from /proc, summed over
the processes that serve (a `--workers N` parent only supervises).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.helpers.served import grpc_serving

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30


def grpc_ready(addr: str) -> Callable[[], bool]:
    """A check that the grpc.health.v1 service at addr answers SERVING (the tests' own check)."""
    return functools.partial(grpc_serving, addr)


def http_ready(url: str) -> Callable[[], bool]:
    """A check that url answers at all (any HTTP status: the server is up)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            return False

    return check


class Target:
    """One or more identical server processes (several share a port with SO_REUSEPORT)."""

    def __init__(
        self,
        command: list[str],
        ready: Callable[[], bool],
        log: Path,
        *,
        copies: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.log = log
        self.ready = ready
        self.copies = copies
        self.env = {**os.environ, **(env or {})}
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> Target:
        with self.log.open("ab") as log:
            for _ in range(self.copies):
                self.processes.append(
                    subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
                )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self.ready():
            if any(p.poll() is not None for p in self.processes) or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{' '.join(self.command)} did not start; its log: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def python_module(module: str, *args: str) -> list[str]:
    """The command running a module with this interpreter (the project's venv)."""
    return [sys.executable, "-m", module, *args]


def serving_pids(pids: list[int]) -> list[int]:
    """The processes that serve: each pid itself, or its forked workers when
    it has children with the same command line (a supervisor; the embedded
    PostgreSQL's children are not such)."""
    serving = []
    for pid in pids:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        serving += [c for c in children if Path(f"/proc/{c}/cmdline").read_bytes() == command] or [pid]
    return serving


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL process of the machine, by
    pid: the server a benchmark runs on (embedded or on DATABASE_URL) is the
    only busy one, and its backends come and go (see `cpu_since`)."""
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().startswith("postgres"):
                used[int(entry.name)] = cpu_seconds([int(entry.name)])
        except OSError:  # gone meanwhile
            continue
    return used


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings of `postgres_cpu`: a process
    started since counts from zero, one gone since is left out."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def rss_kib(pids: list[int], key: str = "VmRSS") -> int:
    """Resident memory of the processes together (VmHWM: the sum of their peaks)."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                total += int(line.split()[1])
    return total


def process_tree(pids: list[int]) -> list[int]:
    """The processes and all their descendants (a supervisor and its workers, however started)."""
    tree: list[int] = []
    pending = list(pids)
    while pending:
        pid = pending.pop()
        tree.append(pid)
        try:
            pending += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except FileNotFoundError:
            continue
    return tree
