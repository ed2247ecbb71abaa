"""Shared test fixtures: one real PostgreSQL, one real server on a real port.

Every fixture more than one test module uses is here, found by pytest and
never imported; the plain functions tests share are in tests/helpers/.

The database is the embedded PostgreSQL (pgserver) unless DATABASE_URL names
a server; then a fresh database is created on that server for the run and
dropped afterwards, so the named database itself is never touched.

The gRPC server runs in the test process on an ephemeral port and is reached
through real channels and generated stubs. Each test starts from empty tables
and an empty session cache.

Every error the in-process servers send is recorded as (method, status code,
reason) on its way through the error interceptor; when the run ends, one the
RPC does not declare (its `(parley.api.v1.errors)` option in the protos, or
what its access level implies) fails the run, so the declarations the API
reference is built from cannot silently fall behind the code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from parley.client import rpcs
from parley_server.app import App, build_app
from parley_server.bridge.envoy import serve_with_envoy
from parley_server.common.errors import DomainError
from parley_server.db.database import asyncpg_dsn, normalise_url
from parley_server.db.embedded import start_embedded_postgres
from parley_server.db.migrate import migrate
from parley_server.transport.interceptors.access_policy import POLICY, implied_errors
from parley_server.transport.interceptors.error_status import CODES, ErrorMapping
from parley_server.transport.server import RunningServer, start_server
from tests.helpers.accounts import Account
from tests.helpers.grpc_web import RunningBridge, http
from tests.helpers.in_process import second_server, settings_for_tests
from tests.helpers.served import free_port
from tests.helpers.stubs import Stubs

SENT_ERRORS: set[tuple[str, str, str]] = set()
_answer = ErrorMapping.answer


async def _recording_answer(
    self: ErrorMapping, context: grpc.aio.ServicerContext[Any, Any], method_name: str, error: Exception
) -> NoReturn:
    if isinstance(error, DomainError):
        SENT_ERRORS.add((method_name, CODES[type(error)].name, str(error.reason)))
    await _answer(self, context, method_name, error)


ErrorMapping.answer = _recording_answer  # type: ignore[method-assign]


def undeclared_errors() -> list[str]:
    """The errors sent during the run that their RPC does not declare, as proto option lines."""
    methods = {rpcs.full_name(m): m for m in rpcs.methods()}
    missing = []
    for method_name, code, reason in sorted(SENT_ERRORS):
        method = methods.get(method_name)
        if method is None or method_name not in POLICY:
            continue
        declared = {*rpcs.declared_errors(method), *implied_errors(POLICY[method_name])}
        if (code, reason) not in declared:
            missing.append(f'{method_name}: option (parley.api.v1.errors) = {{code: "{code}" reason: "{reason}"}};')
    return missing


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if undeclared_errors() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    missing = undeclared_errors()
    if missing:
        terminalreporter.section("errors sent but not declared in the protos", red=True)
        for line in missing:
            terminalreporter.line(line)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parley")


@pytest.fixture(scope="session")
async def database_url(tmp_root: Path) -> AsyncIterator[str]:
    external = os.environ.get("DATABASE_URL")
    if not external:
        yield start_embedded_postgres(tmp_root / "embedded", cleanup="delete")
        return
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(external))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(normalise_url(external)).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def app(tmp_root: Path, database_url: str) -> AsyncIterator[App]:
    application = build_app(settings_for_tests(tmp_root, database_url), database_url)
    await migrate(application.database)
    async with application.database.transaction() as db:
        # The migration seeds the default agents; keep a copy to restore after truncation.
        await db.execute(text("CREATE SCHEMA IF NOT EXISTS test_seed"))
        await db.execute(text("DROP TABLE IF EXISTS test_seed.agents"))
        await db.execute(text("CREATE TABLE test_seed.agents AS SELECT * FROM agents"))
    await application.start()
    yield application
    await application.aclose()


@pytest.fixture(scope="session")
async def server(app: App) -> AsyncIterator[RunningServer]:
    running = await start_server(app, "127.0.0.1:0")
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
async def stubs(channel: grpc.aio.Channel, app: App) -> AsyncIterator[Stubs]:
    """Stubs on the shared channel, after emptying every table and cache."""
    await truncate_all(app)
    yield Stubs(channel, app)


async def truncate_all(app: App) -> None:
    # A previous test's generation may still be finishing (usage, title):
    # let it end so it does not write into the next test's tables.
    assert await app.chat.generations.idle(timeout=30), "a generation did not finish"
    for attempt in range(5):
        try:
            async with app.database.transaction() as db:
                tables = (
                    await db.execute(
                        text(
                            "SELECT tablename FROM pg_tables "
                            "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                        )
                    )
                ).scalars()
                await db.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                await db.execute(text("INSERT INTO agents SELECT * FROM test_seed.agents"))
            break
        except DBAPIError as exc:
            # Server processes of other tests may still be writing (a title, a
            # sweep); TRUNCATE then deadlocks with them. Try again shortly.
            if "deadlock" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.2)
    app.sessions.clear_cache()
    app.api_keys.clear_cache()


@pytest.fixture
async def alice(stubs: Stubs) -> Account:
    return await stubs.active_account("alice@example.com")


@pytest.fixture(scope="module")
async def replica(app: App, tmp_root: Path, database_url: str) -> AsyncIterator[Stubs]:
    """Another replica on the same database: its own App (pool, caches) and port."""
    async with second_server(tmp_root, database_url) as other:
        yield other


@pytest.fixture(scope="module")
async def waitlist_server(app: App, tmp_root: Path, database_url: str) -> AsyncIterator[Stubs]:
    """A second App and server with the waitlist on, sharing the test database."""
    async with second_server(tmp_root, database_url, waitlist=True) as other:
        yield other


@pytest.fixture
async def wl(stubs: Stubs, waitlist_server: Stubs) -> Stubs:
    """Stubs of the waitlist server, on tables `stubs` just emptied."""
    waitlist_server.app.sessions.clear_cache()
    return waitlist_server


@pytest.fixture
async def bridge(app: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[RunningBridge]:
    """serve_with_envoy in this process, on the test app, until the test ends."""
    caplog.set_level(logging.INFO, logger="parley_server.bridge.envoy")
    settings = app.settings.model_copy(
        update={
            "data_dir": tmp_path,
            "envoy_addr": f"127.0.0.1:{free_port()}",
            "envoy_admin_addr": f"127.0.0.1:{free_port()}",
            "shutdown_grace_seconds": 1,
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve_with_envoy(dataclasses.replace(app, settings=settings), "127.0.0.1:0", stop))
    deadline = time.monotonic() + 30
    # Ready once the supervisor says so (it has seen Envoy's /ready itself).
    while "Envoy (pid" not in caplog.text:
        assert not task.done(), f"serve_with_envoy ended early: {task.result()}\n{caplog.text}"
        assert time.monotonic() < deadline, f"Envoy was not ready in 30 s:\n{caplog.text}"
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(_ready, settings.envoy_admin_addr)
    yield RunningBridge(f"http://{settings.envoy_addr}", settings.envoy_admin_addr, tmp_path / "envoy.yaml", task, stop)
    stop.set()
    await asyncio.wait_for(task, 30)


def _ready(admin: str) -> bool:
    try:
        return http(f"http://{admin}/ready")[0] == 200
    except OSError:
        return False
