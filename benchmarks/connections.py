"""gRPC channels that are really separate connections."""

from __future__ import annotations

import grpc

# grpc shares one TCP connection among a process's channels to one address
# unless each keeps its own subchannel pool; a benchmark that means to spread
# its calls over several connections (as many clients would, and so that
# SO_REUSEPORT spreads them over --workers) must say so.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def own_connection(addr: str) -> grpc.aio.Channel:
    """A channel to addr on a TCP connection of its own."""
    return grpc.aio.insecure_channel(addr, options=OWN_CONNECTION)
