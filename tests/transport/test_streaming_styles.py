"""Every handler style passes the interceptor chain: unary, streaming as an
async generator (Parley's chat), streaming as a coroutine that writes with
`context.write` (the standard health service's Watch), and bidirectional
(server reflection). Each is called well-formed and with undecodable bytes,
natively, through Envoy's gRPC-web bridge, and with grpcurl.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from parley.chat.v1 import chat_pb2
from parley_server.transport.server import SERVICE_NAMES, RunningServer
from tests.helpers.errors import expect_error
from tests.helpers.grpc_web import GRPC_WEB, RunningBridge, first_frame, frame, http
from tests.helpers.health import aio_health_stub
from tests.helpers.served import BIN
from tests.helpers.stubs import Stubs

T = TypeVar("T")

SERVING = health_pb2.HealthCheckResponse.SERVING
UNDECODABLE = b"\xff\xff\xff\xff"


async def test_health_watch_streams_serving(channel: grpc.aio.Channel, server: RunningServer) -> None:
    watch = aio_health_stub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
    first = await anext(aiter(watch))
    assert first.status == SERVING
    watch.cancel()


async def test_health_watch_follows_a_status_change(channel: grpc.aio.Channel, server: RunningServer) -> None:
    """Watch is a long-lived stream: a later change arrives on it."""
    name = f"parley.test.v1.Probe{uuid.uuid4().hex[:8]}"
    await server.health.set(name, SERVING)
    watch = aio_health_stub(channel).Watch(health_pb2.HealthCheckRequest(service=name), timeout=10)
    responses = aiter(watch)
    assert (await anext(responses)).status == SERVING
    await server.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert (await anext(responses)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


async def test_health_watch_of_an_unknown_service_says_so(channel: grpc.aio.Channel, server: RunningServer) -> None:
    watch = aio_health_stub(channel).Watch(health_pb2.HealthCheckRequest(service="nope.v1.Nope"), timeout=10)
    assert (await anext(aiter(watch))).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    watch.cancel()


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",  # unary
        "/grpc.health.v1.Health/Watch",  # streaming, written with context.write
    ],
)
async def test_undecodable_request_is_invalid_argument(
    channel: grpc.aio.Channel, server: RunningServer, method: str
) -> None:
    # Without serializers, requests and responses are the raw bytes.
    call: Awaitable[bytes]
    if method.endswith("/Check"):
        unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        call = unary(UNDECODABLE, timeout=10)
    else:
        stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(method)
        call = _first(stream(UNDECODABLE, timeout=10))
    details = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert "request" in details.violations


async def test_undecodable_request_to_an_async_generator_stream_is_invalid_argument(
    channel: grpc.aio.Channel, stubs: Stubs
) -> None:
    alice = await stubs.active_account()
    resume: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
        "/parley.chat.v1.ChatService/ResumeStream"
    )
    await expect_error(
        _first(resume(UNDECODABLE, metadata=alice.md)), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"
    )


async def test_async_generator_stream_still_maps_domain_errors(stubs: Stubs) -> None:
    alice = await stubs.active_account()
    request = chat_pb2.ResumeStreamRequest(message_id=str(uuid.uuid4()))
    await expect_error(_first(stubs.chat.ResumeStream(request, metadata=alice.md)), grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize("service", ["grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"])
async def test_reflection_lists_every_service(channel: grpc.aio.Channel, server: RunningServer, service: str) -> None:
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    response = await _first(call(_one(reflection_pb2.ServerReflectionRequest(list_services="")), timeout=10))
    listed = {s.name for s in response.list_services_response.service}
    assert set(SERVICE_NAMES) | {"grpc.health.v1.Health"} <= listed


async def test_undecodable_reflection_request_is_invalid_argument(
    channel: grpc.aio.Channel, server: RunningServer
) -> None:
    raw: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
    details = await expect_error(
        _first(raw(_one(UNDECODABLE), timeout=10)), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"
    )
    assert "request" in details.violations


# --- through Envoy (gRPC-web) and with grpcurl ------------------------------------


async def test_health_watch_streams_serving_through_grpc_web(bridge: RunningBridge) -> None:
    status, first = await asyncio.to_thread(first_frame, bridge.url, "/grpc.health.v1.Health/Watch", b"")
    assert status == 200
    # A data frame (flag 0) holding HealthCheckResponse{status: SERVING}.
    assert first == b"\x00\x00\x00\x00\x02\x08\x01"


async def test_undecodable_watch_request_through_grpc_web_is_invalid_argument(bridge: RunningBridge) -> None:
    status, headers, _ = await asyncio.to_thread(
        http, bridge.url + "/grpc.health.v1.Health/Watch", method="POST", headers=GRPC_WEB, body=frame(UNDECODABLE)
    )
    # Trailers-only: the status is in the HTTP headers, as for any early error.
    assert status == 200 and headers["grpc-status"] == "3", headers
    assert b"MALFORMED_REQUEST" in base64.b64decode(headers["grpc-status-details-bin"] + "==")


@pytest.mark.parametrize("through", ["grpc", "envoy"])
async def test_grpcurl_health_watch_streams_serving(bridge: RunningBridge, server: RunningServer, through: str) -> None:
    """grpcurl speaks native gRPC; Envoy's port accepts it too (h2c) and forwards it."""
    target = f"127.0.0.1:{server.port}" if through == "grpc" else bridge.url.removeprefix("http://")
    result = await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "grpcurl"), "-plaintext", "-max-time", "3", target, "grpc.health.v1.Health/Watch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Watch never ends by itself: grpcurl stops at -max-time, after printing SERVING.
    assert '"status": "SERVING"' in result.stdout, result.stdout + result.stderr


# --- helpers ------------------------------------------------------------------------


async def _first(call: AsyncIterable[T]) -> T:
    """The first response of a stream (raises its error), then cancel it."""
    try:
        return await anext(aiter(call))
    finally:
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            cancel()


async def _one(item: T) -> AsyncIterator[T]:
    yield item
