"""Per-RPC values every interceptor and log line can see (set by the logging interceptor)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass
class RequestInfo:
    """Filled in as the RPC passes the interceptors; the logging one prints it."""

    request_id: str
    # The account whose rights the call has.
    user_id: str | None = None
    # For a call by API key: the key, and its owner (a service account acting
    # for user_id, or user_id itself).
    api_key_id: str | None = None
    principal_id: str | None = None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 100


def incoming_request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's x-request-id when sane, else a fresh one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
            if value.isprintable():
                return value
    return uuid.uuid4().hex


def client_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The peer's IP address, from grpc's "ipv4:1.2.3.4:5678" / "ipv6:[::1]:5678"."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return kind
