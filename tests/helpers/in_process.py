"""Parley in the test process: its settings, and more replicas on the test database.

The suite's own App and server are fixtures (tests/conftest.py); these are
for a test that needs another one beside them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from parley_server.app import build_app
from parley_server.settings import Settings
from parley_server.transport.server import start_server
from tests.helpers.stubs import Stubs

if TYPE_CHECKING:
    from parley_server.common.tracing import Tracing

TEST_JWT_SECRET = "test-secret-" + "x" * 40


def settings_for_tests(tmp_root: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for an in-process test server: cheap Argon2, fixed secret, outbox
    email, and each piece of streamed text a delta of its own (no frame), so a
    test can act after the Nth delta while the answer is still being generated."""
    base = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "PARLEY_DATA_DIR": str(tmp_root / "data"),
            "PARLEY_JWT_SECRET": TEST_JWT_SECRET,
            "PARLEY_ARGON2_TIME_COST": "1",
            "PARLEY_ARGON2_MEMORY_KIB": "8192",
            "PARLEY_EMAIL_BACKEND": "outbox",
            "PARLEY_ECHO_DELAY_MS": "10",
            "PARLEY_PERSIST_INTERVAL_MS": "100",
            "PARLEY_STREAM_FRAME_MS": "0",
        }
    )
    unknown = overrides.keys() - Settings.model_fields.keys()
    # model_copy would keep them beside the fields, where nothing reads them.
    assert not unknown, f"not settings: {sorted(unknown)}"
    return base.model_copy(update=overrides)


@asynccontextmanager
async def second_server(
    tmp_root: Path, database_url: str, *, tracing: Tracing | None = None, **overrides: object
) -> AsyncIterator[Stubs]:
    """Another replica on the same database: its own App (pool, caches, settings
    overrides, tracing when given) and port, reached through Stubs whose `.app` is that App."""
    other = build_app(settings_for_tests(tmp_root, database_url, **overrides), database_url, tracing=tracing)
    running = await start_server(other, "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Stubs(channel, other)
    finally:
        await channel.close()
        await running.stop(0)
        await other.aclose()
