"""ParleyError: a failed Parley call, decoded from its google.rpc.Status details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["ParleyError"]


class ParleyError(grpc.RpcError):
    """A Parley RPC that failed, with the AIP-193 error details decoded.

    Attributes:
        code: the canonical status code (`grpc.StatusCode`).
        message: the human-readable status message (never a stack trace).
        reason: `ErrorInfo.reason`, a stable UPPER_SNAKE identifier such as
            `INVALID_CREDENTIALS`, `TOKEN_EXPIRED`, `QUOTA_EXCEEDED`; branch on
            this, not on the message. Empty if the server sent no ErrorInfo
            (e.g. a transport failure reported by the gRPC library itself).
        domain: `ErrorInfo.domain` (`"parley"` for Parley's own errors).
        field_violations: `BadRequest.field_violations` as {field: description}
            (set for INVALID_ARGUMENT).
        retry_after: `RetryInfo.retry_delay` in seconds (set for
            RESOURCE_EXHAUSTED rate limits), else None.
        metadata: `ErrorInfo.metadata`.

    It subclasses `grpc.RpcError`, so existing `except grpc.RpcError` handlers
    keep catching it; the original `grpc.aio.AioRpcError`, when there was one,
    is `rpc_error`.
    """

    # An attribute, where the grpc stubs give RpcError a code() method (as
    # grpc.aio's AioRpcError has); grpc.RpcError itself declares nothing.
    code: grpc.StatusCode  # type: ignore[assignment]

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        field_violations: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        *,
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        rpc_error: grpc.aio.AioRpcError | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.field_violations: dict[str, str] = dict(field_violations or {})
        self.retry_after = retry_after
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.rpc_error = rpc_error

    @classmethod
    def from_rpc_error(cls, exc: grpc.aio.AioRpcError) -> ParleyError:
        """Decode grpc-status-details-bin (ErrorInfo, BadRequest, RetryInfo) of a failed call."""
        error = cls(exc.code(), exc.details() or "", rpc_error=exc)
        try:
            # from_call reads code(), details() and trailing_metadata(), which
            # AioRpcError has (synchronous, as on grpc.Call) without being one.
            status = rpc_status.from_call(exc)  # type: ignore[arg-type]
        except ValueError:  # details inconsistent with the call status: ignore them
            status = None
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                error.reason, error.domain = info.reason, info.domain
                error.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                error.field_violations = {v.field: v.description for v in bad.field_violations}
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                error.retry_after = retry.retry_delay.ToTimedelta().total_seconds()
        return error

    def __str__(self) -> str:
        label = self.reason or self.code.name
        text = f"{label}: {self.message}" if self.message else label
        if self.field_violations:
            text += " (" + "; ".join(f"{f}: {d}" for f, d in self.field_violations.items()) + ")"
        return text

    def __repr__(self) -> str:
        fields: dict[str, Any] = {"code": self.code, "message": self.message, "reason": self.reason}
        if self.field_violations:
            fields["field_violations"] = self.field_violations
        if self.retry_after is not None:
            fields["retry_after"] = self.retry_after
        return f"ParleyError({', '.join(f'{k}={v!r}' for k, v in fields.items())})"
