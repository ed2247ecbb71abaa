"""Sampled profiles of a running server (py-spy), for the benchmarks' --profile.

py-spy samples the process from outside (100 times a second, without
pausing it), so the server runs unmodified. Samples are kept as collapsed
stacks (`--format raw`: one line per distinct stack, with its count), which
speedscope and flamegraph tools open, and summarised here: the functions
with the most samples on top of the stack (self) and anywhere in it
(inclusive), in % of all the samples where the process was busy.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType

# "function (path/to/file.py:123)", the form of each frame in py-spy's output.
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
TOP = 10
# Threads left out: gRPC's completion-queue poller waits in epoll_wait
# nearly all the time (96% of its samples, seen with py-spy --native), yet
# py-spy counts it busy, as a third of a unary server's samples.
IDLE_THREADS = ("(_poll_wrapper)",)
# A process's outermost frames, under which everything runs: not a cost.
ENTRY_POINTS = ("(parley_server/cli.py)", "(parley_server/bridge/workers.py)")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: pip install -e '.[dev]'")
    return found


class Recording:
    """`with Recording(pid, path):` samples pid and its children until the block ends."""

    def __init__(self, pid: int, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._command = [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(path),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Recording:
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        _, stderr = self._process.communicate(timeout=60)
        if not self.path.exists():
            print(f"py-spy wrote no profile: {stderr.decode(errors='replace').strip()}")


def _function(frame: str) -> str:
    """ "name (…/site-packages/pkg/mod.py:12)" -> "name (pkg/mod.py)"."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/lib/python3.", "/server/", "/clients/python/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    if file.startswith("1") and "/" in file:  # "11/asyncio/...": the standard library's version
        file = file.split("/", 1)[1]
    return f"{match['function']} ({file})"


def _area(function: str) -> str:
    """Where a function on top of the stack belongs: its package, or native code.

    py-spy sees Python frames only; time in C under a Python frame counts as
    that frame's. On top of the event loop's run (uvloop, gRPC's Cython and
    core, socket I/O) or of a bare thread it is native code.
    """
    if function.startswith(("Runner.run ", "Thread.run ", "run_forever ", "BaseEventLoop.run_")):
        return "native: event loop, gRPC core, I/O"
    file = function.rsplit("(", 1)[-1]
    package = file.split("/", 1)[0] if "/" in file else file.split(".", 1)[0]
    return package.rstrip(")")


def summary(path: Path, title: str, cost_per_unit_us: float = 0.0, unit: str = "") -> str:
    """The top costs in a raw (collapsed-stack) profile: functions on top of the
    stack, the same by package, and Parley's own functions including callees.

    With cost_per_unit_us (the server's CPU per request or per token in that
    profile's round), each share is also shown in microseconds of that unit.
    Samples are of Python stacks only: CPU spent by gRPC's native threads
    (event_engine) is in cost_per_unit_us but spread over the samples of
    the threads shown. SQLAlchemy's ORM runs its database work
    in greenlets, whose stacks py-spy shows without their caller, so a Parley
    function's "including callees" share leaves that out.
    """
    if not path.exists():
        return f"{title}: no profile"
    self_cost: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # The process first (with --subprocesses, its parents before it), then (--threads) the thread.
        parts = stack.split(";")
        thread = next((i for i, part in enumerate(parts) if part.startswith("thread (")), None)
        if thread is None or parts[thread].endswith(IDLE_THREADS):
            continue
        functions = [_function(f) for f in parts[thread + 1 :] if FRAME.match(f.strip())]
        if not functions:
            continue
        n = int(count)
        total += n
        self_cost[functions[-1]] += n
        areas[_area(functions[-1])] += n
        for function in {f for f in functions if "(parley_server/" in f and not f.endswith(ENTRY_POINTS)}:
            inclusive[function] += n
    if not total:
        return f"{title}: no samples"

    def share(n: int) -> str:
        us = f"  {n / total * cost_per_unit_us:7.1f} us/{unit}" if cost_per_unit_us else ""
        return f"{n / total:6.1%}{us}"

    lines = [f"{title}: {total} samples, {path}"]
    if cost_per_unit_us:
        lines[0] += f"; server CPU {cost_per_unit_us:,.0f} us per {unit}"
    lines.append("  on top of the stack (self), by function:")
    lines += [f"    {share(n)}  {f}" for f, n in self_cost.most_common(TOP)]
    lines.append("  on top of the stack (self), by package:")
    lines += [f"    {share(n)}  {a}" for a, n in areas.most_common(TOP)]
    lines.append("  Parley's functions, including what they call (not the greenlets' ORM work):")
    lines += [f"    {share(n)}  {f}" for f, n in inclusive.most_common(TOP)]
    return "\n".join(lines)
