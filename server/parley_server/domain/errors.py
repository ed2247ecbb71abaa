"""Domain errors: what went wrong, in terms a caller can act on.

Each class corresponds to one canonical gRPC status; the error interceptor does
the mapping, so domain code stays free of gRPC. `reason` becomes
`ErrorInfo.reason` (UPPER_SNAKE_CASE, stable, documented), field violations
become `BadRequest.field_violations`, retry_after becomes `RetryInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (e.g. `user.display_name`) and why."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a caller is meant to see."""

    default_reason = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation], *, reason: str | None = None) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {summary}", reason=reason)
        self.violations = violations


class Unauthenticated(DomainError):
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    default_reason = "PERMISSION_DENIED"


class NotFound(DomainError):
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    default_reason = "FAILED_PRECONDITION"


class OutOfRange(DomainError):
    """A position past the end of what exists now; valid again once it exists."""

    default_reason = "OUT_OF_RANGE"


class ResourceExhausted(DomainError):
    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after: timedelta, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after
