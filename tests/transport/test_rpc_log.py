"""Each RPC logs one line: a JSON object with its method, final status,
duration, caller and request id, which operators grep and parse."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.conversation.v1 import conversation_pb2
from tests.helpers.errors import expect_error
from tests.helpers.health import aio_health_stub
from tests.helpers.served import ServerProcess
from tests.helpers.stubs import Stubs

FIELDS = {"rpc", "code", "ms", "user", "principal", "api_key", "request_id", "trace_id"}
FRESH_ID = re.compile(r"[0-9a-f]{32}")
GET_CURRENT_USER = "/parley.auth.v1.AuthService/GetCurrentUser"


@pytest.fixture(autouse=True)
def rpc_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="parley.rpc")


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    messages = [r.getMessage() for r in caplog.records if r.name == "parley.rpc"]
    assert all("\n" not in m for m in messages), messages
    return [json.loads(m) for m in messages]


async def logged(caplog: pytest.LogCaptureFixture, key: str, value: str, count: int = 1) -> list[dict[str, Any]]:
    """The lines whose `key` is `value`, once `count` of them are there.

    The server writes a call's line after the caller has its status, so a
    test waits for the line rather than reading the log straight away.
    """
    async with asyncio.timeout(10):
        while len(found := [line for line in lines(caplog) if line[key] == value]) < count:
            await asyncio.sleep(0.02)
    assert len(found) == count, found
    return found


async def line_of(caplog: pytest.LogCaptureFixture, request_id: str) -> dict[str, Any]:
    (line,) = await logged(caplog, "request_id", request_id)
    return line


async def test_a_call_logs_its_method_status_caller_and_request_id(
    stubs: Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await stubs.active_account()
    request_id = 'trace "7" \\ of a caller'  # quotes and a backslash stay valid JSON
    await stubs.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(*alice.md, ("x-request-id", request_id))
    )
    line = await line_of(caplog, request_id)
    assert set(line) == FIELDS
    assert line["rpc"] == GET_CURRENT_USER
    assert (line["code"], line["user"]) == ("OK", alice.user.id)
    assert line["trace_id"] is None  # the suite's server does not trace (tests/tracing covers tracing)
    assert isinstance(line["ms"], float) and line["ms"] >= 0


async def test_a_refused_call_logs_its_status_and_a_fresh_request_id(
    stubs: Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):
        anonymous = stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
        await expect_error(anonymous, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    refused = await logged(caplog, "rpc", GET_CURRENT_USER, count=2)
    assert [(line["code"], line["user"]) for line in refused] == [("UNAUTHENTICATED", None)] * 2
    ids = [line["request_id"] for line in refused]
    assert all(FRESH_ID.fullmatch(i) for i in ids) and ids[0] != ids[1], ids


async def test_a_call_to_a_method_the_server_lacks_logs_unimplemented(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    missing = "/parley.auth.v1.AuthService/NoSuchMethod"
    unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(missing)
    call = unary(b"", metadata=(("x-request-id", "old-client-1"),))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    line = await line_of(caplog, "old-client-1")
    assert (line["rpc"], line["code"], line["user"]) == (missing, "UNIMPLEMENTED", None)


async def test_an_unexpected_error_is_internal_with_the_request_id_it_is_logged_under(
    stubs: Stubs, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await stubs.active_account()

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(stubs.app.conversations, "get_conversation", broken)
    details = await expect_error(
        stubs.conversation.GetConversation(
            conversation_pb2.GetConversationRequest(conversation_id=str(uuid.uuid4())),
            metadata=(*alice.md, ("x-request-id", "bug-hunt-1")),
        ),
        grpc.StatusCode.INTERNAL,
        "INTERNAL",
    )
    assert "bug-hunt-1" in details.message and "a bug" not in details.message
    assert details.metadata == {"request_id": "bug-hunt-1"}
    assert (await line_of(caplog, "bug-hunt-1"))["code"] == "INTERNAL"
    assert any("bug-hunt-1" in r.getMessage() and r.exc_info for r in caplog.records if r.levelno == logging.ERROR)


async def test_a_stream_the_caller_cancels_logs_cancelled(
    channel: grpc.aio.Channel, stubs: Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    watch = aio_health_stub(channel).Watch(
        health_pb2.HealthCheckRequest(), metadata=(("x-request-id", "watch-1"),), timeout=30
    )
    await anext(aiter(watch))
    watch.cancel()
    line = await line_of(caplog, "watch-1")
    assert (line["rpc"], line["code"], line["user"]) == ("/grpc.health.v1.Health/Watch", "CANCELLED", None)


async def test_a_call_cancelled_while_its_caller_is_looked_up_logs_cancelled(
    stubs: Stubs, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await stubs.active_account()
    looking_up = asyncio.Event()

    async def stuck(token: str) -> None:
        looking_up.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(stubs.app.sessions, "authenticate", stuck)
    call = stubs.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(*alice.md, ("x-request-id", "stuck-1"))
    )
    await looking_up.wait()
    call.cancel()
    assert (await line_of(caplog, "stuck-1"))["code"] == "CANCELLED"


SERVED_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO parley\.rpc (\{.*\})$", re.MULTILINE)


async def test_a_served_process_writes_each_call_as_one_line_on_stderr(tmp_path: Path, database_url: str) -> None:
    """`parley serve` writes its lines without log records (common/logs.py): same format, one line per call."""
    server = ServerProcess(tmp_path, DATABASE_URL=database_url).start()
    try:
        async with grpc.aio.insecure_channel(server.addr) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            for n in range(3):
                call = stub.GetCurrentUser(
                    auth_pb2.GetCurrentUserRequest(), metadata=(("x-request-id", f"served-{n}"),)
                )
                await expect_error(call, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
        async with asyncio.timeout(10):
            while len(found := _served_lines(server.log(), "served-")) < 3:
                await asyncio.sleep(0.05)
    finally:
        server.kill()
    assert [(line["request_id"], line["rpc"], line["code"]) for line in found] == [
        (f"served-{n}", GET_CURRENT_USER, "UNAUTHENTICATED") for n in range(3)
    ]
    assert all(set(line) == FIELDS for line in found)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_the_last_calls_lines_are_written_when_the_server_stops(
    tmp_path: Path, database_url: str, workers: str
) -> None:
    """Lines wait a moment to be written several at a time (common/logs.py):
    stopping at once loses none, in one process or in workers (which leave by os._exit)."""
    server = ServerProcess(tmp_path, args=("--no-envoy", "--workers", workers), DATABASE_URL=database_url).start()
    try:
        async with grpc.aio.insecure_channel(server.addr) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            for n in range(5):
                call = stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=(("x-request-id", f"last-{n}"),))
                await expect_error(call, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
        assert server.terminate() == 0
    finally:
        server.kill()
    assert sorted(line["request_id"] for line in _served_lines(server.log(), "last-")) == [
        f"last-{n}" for n in range(5)
    ]


def _served_lines(log: str, request_prefix: str) -> list[dict[str, Any]]:
    parsed = (json.loads(match) for match in SERVED_LINE.findall(log))
    return [line for line in parsed if str(line["request_id"]).startswith(request_prefix)]
