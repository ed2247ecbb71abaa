"""h2load (nghttp2's HTTP/2 load generator) as the unary benchmarks' driver.

A C client with one thread: it leaves nearly all of this machine's CPU to
the server measured, which a Python client cannot. It speaks gRPC well
enough for unary calls: the request is one length-prefixed message sent as
the POST body, with gRPC's headers.

h2load counts every HTTP 200 as a success, and a gRPC error is an HTTP 200
too (with a non-zero grpc-status in its trailers, which h2load never reads).
So a round is only trusted when the response bytes add up: a successful
answer of these benchmarks is the same message every time, an error carries
no message at all, so DATA bytes must equal successes x one answer's size.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "nghttp2-client"


def ensure_h2load() -> str:
    """The h2load binary; installed with apt-get when missing and running as root."""
    found = shutil.which("h2load")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"h2load not found: installing {PACKAGE} with apt-get", flush=True)
        installed = subprocess.run(
            ["apt-get", "install", "-y", "-q", PACKAGE], capture_output=True, text=True, check=False
        )
        if installed.returncode != 0:  # an old or missing package list: update once, then retry
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
            subprocess.run(["apt-get", "install", "-y", "-q", PACKAGE], capture_output=True, check=False)
        found = shutil.which("h2load")
        if found:
            return found
    raise SystemExit(f"h2load is needed: install Debian's {PACKAGE} package (apt-get install {PACKAGE}).")


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, the bytes."""
    return struct.pack(">BI", 0, len(message)) + message


@dataclass(frozen=True)
class Request:
    """What every request of a round is: URL, headers, body (None: GET) and
    the size of one successful answer's body."""

    url: str
    headers: tuple[str, ...]
    body: bytes | None
    answer_bytes: int
    http1: bool = False


@dataclass(frozen=True)
class Result:
    requests_per_second: float
    succeeded: int
    failed: int
    data_bytes: int
    # Empty when every answer had the size of a successful one.
    problem: str


def grpc_request(addr: str, method: str, message: bytes, answer: bytes, token: str = "") -> Request:
    """A unary gRPC call of `method` ("/package.Service/Method") at addr."""
    headers = ["content-type: application/grpc", "te: trailers"]
    if token:
        headers.append(f"authorization: Bearer {token}")
    return Request(f"http://{addr}{method}", tuple(headers), grpc_frame(message), len(grpc_frame(answer)))


def run(
    binary: str, request: Request, *, concurrency: int, connections: int, count: int = 0, seconds: float = 0
) -> Result:
    """`count` requests, or as many as fit in `seconds`, `concurrency` at a time.
    HTTP/2 spreads the streams over `connections`; HTTP/1.1 (no multiplexing,
    no pipelining) needs one connection per request in flight.

    Only a counted run (-n) is checked against the answer size: a timed run's
    (-D) byte counts cover more than the requests it counts (its warm-up's,
    those cut off at the end). Timed runs warm up and size the counted ones.
    """
    command = [binary, "-t", "1", *(["-n", str(count)] if count else ["-D", f"{round(seconds * 1000)}ms"])]
    if request.http1:
        command += ["--h1", "-c", str(concurrency), "-m", "1"]
    else:
        command += ["-c", str(connections), "-m", str(max(1, concurrency // connections))]
    for header in request.headers:
        command += ["-H", header]
    with tempfile.TemporaryDirectory() as tmp:
        if request.body is not None:
            body = Path(tmp) / "body"
            body.write_bytes(request.body)
            command += ["-d", str(body)]
        out = subprocess.run([*command, request.url], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"h2load failed ({out.returncode}): {out.stderr or out.stdout}")
    return parse(out.stdout, request.answer_bytes if count else 0)


def parse(output: str, answer_bytes: int) -> Result:
    """h2load's figures; the byte count is checked unless answer_bytes is 0."""
    rate = _number(r"finished in [\d.]+\w*, ([\d.]+) req/s", output)
    succeeded = int(_number(r"requests: .*? (\d+) succeeded", output))
    failed = int(_number(r"requests: .*? (\d+) failed", output))
    non_2xx = sum(int(n) for n in re.findall(r"(\d+) [345]xx", output))
    data = int(_number(r"traffic: .*?, [\d.]+\w* \((\d+)\) data", output))
    problem = ""
    if failed or non_2xx:
        problem = f"{failed} failed, {non_2xx} non-2xx"
    elif answer_bytes and data != succeeded * answer_bytes:
        problem = f"{data} data bytes for {succeeded} answers of {answer_bytes}: some were errors"
    return Result(rate, succeeded, failed, data, problem)


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"unexpected h2load output (no /{pattern}/):\n{text}")
    return float(found.group(1))
