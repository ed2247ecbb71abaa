"""What a refused call must carry: a status code, ErrorInfo details, and no change to stored data."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import grpc

from parley.client.errors import ParleyError
from parley_server.app import App
from tests.helpers.database import snapshot


@dataclass
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    violations: dict[str, str] = field(default_factory=dict)
    retry_seconds: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def error_details(exc: grpc.aio.AioRpcError) -> ErrorDetails:
    """Decode grpc-status-details-bin (ErrorInfo, BadRequest, RetryInfo) with the client's decoder."""
    error = ParleyError.from_rpc_error(exc)
    assert error.domain, f"no ErrorInfo details on {exc.code()}: {exc.details()}"
    return ErrorDetails(
        error.code,
        error.message,
        error.reason,
        error.domain,
        error.field_violations,
        error.retry_after,
        error.metadata,
    )


async def expect_error(call: Awaitable[Any], code: grpc.StatusCode, reason: str | None = None) -> ErrorDetails:
    """Await call, assert it fails with code (and reason), return the decoded details."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        details = error_details(exc)
        assert details.code == code, f"expected {code}, got {details.code}: {details.message}"
        assert details.domain == "parley"
        assert details.reason, "ErrorInfo.reason must be set"
        if reason is not None:
            assert details.reason == reason, f"expected reason {reason}, got {details.reason}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert details.violations, "INVALID_ARGUMENT must carry field violations"
        return details
    raise AssertionError(f"expected {code}, but the call succeeded")


async def expect_invalid_naming(app: App, call: Awaitable[Any], *fields: str) -> None:
    """INVALID_ARGUMENT naming each of fields (others may be named too), and not one row changed."""
    before = await snapshot(app)
    details = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
    for name in fields:
        assert name in details.violations, details.violations
    assert await snapshot(app) == before


async def expect_invalid_exactly(
    app: App, call: Awaitable[Any], fields: set[str], before: dict[str, Any] | None = None
) -> None:
    """INVALID_ARGUMENT naming exactly `fields`, each with a message, and not a row changed
    (against `before` when given)."""
    if before is None:
        before = await snapshot(app)
    details = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
    assert set(details.violations) == fields, details.violations
    assert all(details.violations.values()), "every violation says what is wrong"
    assert await snapshot(app) == before
