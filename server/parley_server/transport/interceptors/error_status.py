"""Turns exceptions into canonical gRPC statuses with AIP-193 details.

Every non-OK status carries a `google.rpc.Status` in grpc-status-details-bin
with an ErrorInfo (reason, domain "parley"), plus BadRequest field violations
for INVALID_ARGUMENT and RetryInfo for RESOURCE_EXHAUSTED. A database that is
not reachable right now (db/outage.py decides) is UNAVAILABLE with RetryInfo:
the caller may retry safely where the RPC allows it (reads, creates with a
request_id). Unexpected exceptions are logged with the request id and answered
INTERNAL with only that id in the message, so no internals reach the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from parley_server.common import errors
from parley_server.common.errors import Reason
from parley_server.db.outage import is_outage
from parley_server.transport.interceptors.request_context import current_request

log = logging.getLogger(__name__)

ERROR_DOMAIN = "parley"
# RetryInfo of DATABASE_UNAVAILABLE: a PostgreSQL restart takes about this long.
DATABASE_RETRY_DELAY = timedelta(seconds=1)

CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def rich_status(
    code: grpc.StatusCode,
    message: str,
    reason: Reason,
    metadata: dict[str, str] | None = None,
    extra_details: list[Message] | None = None,
) -> grpc.Status:
    """A grpc.Status whose trailers carry google.rpc.Status with ErrorInfo first."""
    details = [_packed(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {}))]
    details += [_packed(d) for d in extra_details or []]
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return rpc_status.to_status(status)


def status_for(error: errors.DomainError) -> grpc.Status:
    extra: list[Message] = []
    if isinstance(error, errors.InvalidArgument):
        extra.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    if isinstance(error, errors.ResourceExhausted):
        delay = duration_pb2.Duration()
        delay.FromTimedelta(max(error.retry_after, timedelta(0)))
        extra.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return rich_status(CODES[type(error)], error.message, error.reason, error.metadata, extra)


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def database_unavailable(request_id: str) -> grpc.Status:
    """UNAVAILABLE with RetryInfo, plus the same delay as `grpc-retry-pushback-ms`,
    which gRPC's own retries (the client's channel retry policy) obey."""
    delay = duration_pb2.Duration()
    delay.FromTimedelta(DATABASE_RETRY_DELAY)
    status = rich_status(
        grpc.StatusCode.UNAVAILABLE,
        f"service temporarily unavailable; retry (request id {request_id})",
        Reason.DATABASE_UNAVAILABLE,
        {"request_id": request_id},
        [error_details_pb2.RetryInfo(retry_delay=delay)],
    )
    pushback = ("grpc-retry-pushback-ms", str(int(DATABASE_RETRY_DELAY.total_seconds() * 1000)))
    return _Status(status.code, status.details, (*status.trailing_metadata, pushback))


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> NoReturn:
    await context.abort(status.code, status.details, status.trailing_metadata)


class ErrorMapping:
    """The interceptor's error step: the status an exception out of the RPC becomes."""

    async def answer(self, context: grpc.aio.ServicerContext[Any, Any], method_name: str, error: Exception) -> NoReturn:
        """End the RPC with the status for `error` (raises, as context.abort does)."""
        if isinstance(error, errors.DomainError):
            await abort_with(context, status_for(error))
        if isinstance(error, grpc.aio.AbortError):
            raise error  # the status is already set
        if isinstance(error, NotImplementedError):
            # What the generated base servicer raises for an RPC without a handler.
            await abort_with(
                context,
                rich_status(grpc.StatusCode.UNIMPLEMENTED, "this method is not implemented", Reason.UNIMPLEMENTED),
            )
        rid = _request_id()
        if is_outage(error):
            log.warning("database unavailable in %s (request %s): %r", method_name, rid, error)
            status = database_unavailable(rid)
        else:
            log.error("unexpected error in %s (request %s)", method_name, rid, exc_info=error)
            status = rich_status(
                grpc.StatusCode.INTERNAL, f"internal error (request id {rid})", Reason.INTERNAL, {"request_id": rid}
            )
        await abort_with(context, status)


def _request_id() -> str:
    info = current_request.get()
    return info.request_id if info else ""
