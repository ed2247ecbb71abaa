"""Server-wide behaviour: access table coverage, health, request ids, codegen freshness."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2

from parley.auth.v1 import auth_pb2
from parley.client import rpcs
from parley.conversation.v1.conversation_pb2 import ListConversationsRequest
from parley_server.accounts.handlers import ApiKeyHandlers, AuthHandlers, ServiceAccountHandlers
from parley_server.admin.handlers import AdminHandlers
from parley_server.agents.access_handlers import AgentAccessHandlers
from parley_server.agents.handlers import AgentHandlers
from parley_server.chat.handlers import ChatHandlers
from parley_server.conversations.handlers import ConversationHandlers
from parley_server.db.database import asyncpg_dsn
from parley_server.feedback.handlers import FeedbackHandlers
from parley_server.portability.handlers import PortabilityHandlers
from parley_server.transport.interceptors.access_policy import POLICY, Access
from parley_server.transport.server import SERVICE_NAMES, RunningServer
from tests.helpers.errors import expect_error
from tests.helpers.health import aio_health_stub
from tests.helpers.repo import REPO_ROOT
from tests.helpers.stubs import Stubs

PARLEY_FILES = rpcs.FILES


def all_parley_methods() -> set[str]:
    return {
        f"/{service.full_name}/{method.name}"
        for module in PARLEY_FILES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_every_rpc_has_an_access_policy() -> None:
    missing = all_parley_methods() - POLICY.keys()
    assert not missing, f"RPCs without an access policy: {sorted(missing)}"


def test_policy_names_only_real_methods() -> None:
    pool = descriptor_pool.Default()
    for method in POLICY:
        service, name = method.strip("/").rsplit("/", 1)
        if service.startswith("grpc.reflection.v1."):
            continue  # served by the v1alpha servicer; its descriptor is not in the pool
        assert pool.FindServiceByName(service).FindMethodByName(name) is not None, method


def test_every_rpc_has_a_handler() -> None:
    """No RPC falls through to the generated base servicer's UNIMPLEMENTED."""
    handlers = [
        AuthHandlers,
        ConversationHandlers,
        AgentAccessHandlers,
        AdminHandlers,
        AgentHandlers,
        ChatHandlers,
        ApiKeyHandlers,
        ServiceAccountHandlers,
        FeedbackHandlers,
        PortabilityHandlers,
    ]
    by_service = {h.__mro__[1].__name__.removesuffix("Servicer"): h for h in handlers}
    for module in PARLEY_FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            handler = by_service[service.name]
            missing = [m.name for m in service.methods if m.name not in vars(handler)]
            assert not missing, f"{service.full_name} has no handler for {missing}"


def test_the_repository_cites_no_document_outside_it() -> None:
    """The repository stands alone: no source or doc points at a design file it does not hold."""
    outside = "API" + ".md"  # spelled apart so this file does not cite it
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    citing = [
        name
        for name in files.split()
        if name.endswith((".py", ".proto", ".ts", ".mjs", ".md", ".sh", ".yaml", ".toml"))
        and outside in (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
    ]
    assert not citing, f"these files cite {outside}, which is not in the repository: {citing}"


def test_admin_rpcs_are_admin_only() -> None:
    admin_methods = {m for m in all_parley_methods() if m.startswith("/parley.admin.v1.")}
    assert {POLICY[m] for m in admin_methods} == {Access.ADMIN}


async def test_health_reports_serving_overall_and_per_service(channel: grpc.aio.Channel, server: RunningServer) -> None:
    health = aio_health_stub(channel)
    for name in ["", *SERVICE_NAMES]:
        response = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_requests_succeed_after_postgresql_closed_every_pooled_connection(stubs: Stubs) -> None:
    alice = await stubs.active_account()
    # Fill the pool with several connections, then have PostgreSQL drop them all
    # (what a database restart or failover does to a running server).
    listing = ListConversationsRequest()
    await asyncio.gather(*(stubs.conversation.ListConversations(listing, metadata=alice.md) for _ in range(8)))
    admin = await asyncpg.connect(asyncpg_dsn(stubs.app.database.url))
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert killed >= 1
    await asyncio.sleep(0.3)  # the server's event loop sees the sockets close
    for _ in range(3):
        await stubs.conversation.ListConversations(ListConversationsRequest(), metadata=alice.md)


async def test_health_of_unknown_service_is_not_found(channel: grpc.aio.Channel, server: RunningServer) -> None:
    health = aio_health_stub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="nope.v1.Nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unknown_method_is_unimplemented(channel: grpc.aio.Channel, stubs: Stubs) -> None:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/parley.auth.v1.AuthService/NoSuchMethod"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_malformed_request_bytes_are_invalid_argument(channel: grpc.aio.Channel, stubs: Stubs) -> None:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/parley.auth.v1.AuthService/Login")
    details = await expect_error(call(b"\xff\xff\xff\xff"), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert "request" in details.violations


async def test_oversized_request_is_refused(stubs: Stubs) -> None:
    huge = "x" * (5 * 1024 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.auth.Login(auth_pb2.LoginRequest(email="a@example.com", password=huge))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_errors_carry_no_internals(stubs: Stubs) -> None:
    details = await expect_error(
        stubs.auth.Login(auth_pb2.LoginRequest(email="nobody@example.com", password="x" * 12)),
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    )
    assert "Traceback" not in details.message and "sqlalchemy" not in details.message.lower()


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/codegen.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_passes() -> None:
    buf = Path(sys.executable).with_name("buf")
    result = subprocess.run([str(buf), "lint"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
