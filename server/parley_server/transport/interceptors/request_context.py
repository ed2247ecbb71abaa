"""Per-RPC values every step of the interceptor and the log line can see."""

from __future__ import annotations

import random
from collections.abc import Collection
from contextvars import ContextVar
from typing import Any

from parley_server.common.caller import Caller

# The metadata grpc.aio hands each RPC: (key, value) pairs, values str or bytes.
Metadata = Collection[tuple[str, Any]]


class RequestInfo:
    """Filled in as the RPC passes the interceptor's steps; the log line prints it."""

    __slots__ = ("caller", "request_id", "started")

    def __init__(self, request_id: str, started: float) -> None:
        self.request_id = request_id
        # time.perf_counter() when the RPC reached the interceptor.
        self.started = started
        # Who called, once authenticated: the line shows the account whose
        # rights the call has and, for a call by API key, the key and its owner.
        self.caller: Caller | None = None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 100


def incoming_request_id(metadata: Metadata) -> str:
    """The caller's x-request-id when sane, else a fresh one: 32 random hex
    digits, like uuid4().hex but without building a UUID or asking the
    kernel for randomness (a system call) on every RPC. An id names a call
    in the logs and needs no secrecy: `random` is seeded from the kernel's
    randomness, in each worker anew after fork."""
    for key, value in metadata:
        if key == REQUEST_ID_HEADER and isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
            if value.isprintable():
                return value
    return random.randbytes(16).hex()
