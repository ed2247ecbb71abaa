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
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    for marker in ("server/", "clients/python/"):
        if file.startswith(("/", ".")) and marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['function']} ({file})"


def summary(path: Path, title: str) -> str:
    """The top self and inclusive costs in a raw (collapsed-stack) profile."""
    if not path.exists():
        return f"{title}: no profile"
    self_cost: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # The first frames name the process and the thread, not code.
        functions = [_function(f) for f in stack.split(";") if FRAME.match(f.strip())]
        if not functions:
            continue
        n = int(count)
        total += n
        self_cost[functions[-1]] += n
        for function in set(functions):
            inclusive[function] += n
    if not total:
        return f"{title}: no samples"
    lines = [f"{title}: {total} samples ({path})", "  self (on top of the stack):"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in self_cost.most_common(TOP)]
    lines.append("  inclusive (anywhere in the stack; the outermost frames are ~100%):")
    lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(TOP * 3) if n < total * 0.95][:TOP]
    return "\n".join(lines)
