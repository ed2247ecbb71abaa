"""Per-RPC values every step of the interceptor and the log line can see."""

from __future__ import annotations

import os
from collections.abc import Collection
from contextvars import ContextVar
from typing import Any

import grpc

# The metadata grpc.aio hands each RPC: (key, value) pairs, values str or bytes.
Metadata = Collection[tuple[str, Any]]


class RequestInfo:
    """Filled in as the RPC passes the interceptor's steps; the log line prints it."""

    __slots__ = ("api_key_id", "principal_id", "request_id", "started", "user_id")

    def __init__(self, request_id: str, started: float) -> None:
        self.request_id = request_id
        # time.perf_counter() when the RPC reached the interceptor.
        self.started = started
        # The account whose rights the call has.
        self.user_id: str | None = None
        # For a call by API key: the key, and its owner (a service account
        # acting for user_id, or user_id itself).
        self.api_key_id: str | None = None
        self.principal_id: str | None = None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 100


def incoming_request_id(metadata: Metadata) -> str:
    """The caller's x-request-id when sane, else a fresh one: 32 random hex
    digits, like uuid4().hex but without building a UUID on every RPC."""
    for key, value in metadata:
        if key == REQUEST_ID_HEADER and isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
            if value.isprintable():
                return value
    return os.urandom(16).hex()


def client_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The peer's IP address, from grpc's "ipv4:1.2.3.4:5678" / "ipv6:[::1]:5678"."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return kind
