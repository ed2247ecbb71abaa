"""What the gRPC handlers of every area share."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

# The context grpc.aio passes to each servicer method. Handlers take it
# because the generated servicer's signature has it (the interceptor reads the
# metadata; Login asks it for the client's address), so its request and
# response types are left open.
Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def client_address(context: Ctx) -> str:
    """The peer's IP address, from grpc's "ipv4:1.2.3.4:5678" / "ipv6:[::1]:5678".

    Asked for by the one handler that needs it (Login's per-client limit),
    not for every call: grpc builds the peer string anew each time."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return kind
