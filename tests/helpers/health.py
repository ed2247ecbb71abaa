"""The standard health service's client stub, typed.

types-grpcio-health-checking declares `HealthStub` without the `Check` and
`Watch` attributes its constructor sets (one multi-callable per RPC, as every
generated stub has), so mypy finds no such attribute. These give the same stub,
built by grpcio-health-checking's own code, the types its attributes have on
each kind of channel.
"""

from __future__ import annotations

from typing import Protocol, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

Request = health_pb2.HealthCheckRequest
Response = health_pb2.HealthCheckResponse


class Health(Protocol):
    """HealthStub on a blocking `grpc.Channel`."""

    Check: grpc.UnaryUnaryMultiCallable[Request, Response]
    Watch: grpc.UnaryStreamMultiCallable[Request, Response]


class AioHealth(Protocol):
    """HealthStub on a `grpc.aio.Channel`."""

    Check: grpc.aio.UnaryUnaryMultiCallable[Request, Response]
    Watch: grpc.aio.UnaryStreamMultiCallable[Request, Response]


def health_stub(channel: grpc.Channel) -> Health:
    return cast(Health, health_pb2_grpc.HealthStub(channel))


def aio_health_stub(channel: grpc.aio.Channel) -> AioHealth:
    return cast(AioHealth, health_pb2_grpc.HealthStub(channel))
