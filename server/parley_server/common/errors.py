"""Domain errors: what went wrong, in terms a caller can act on.

Each class corresponds to one canonical gRPC status; the error interceptor does
the mapping, so domain code stays free of gRPC. `reason` becomes
`ErrorInfo.reason`, field violations become `BadRequest.field_violations`,
retry_after becomes `RetryInfo`.

`Reason` is the one list of the reasons Parley sends, each with its meaning:
every raise names a member, the interceptors use it too, and the API
reference (docs/api.md) is generated from it. Which RPC can return which
reason is declared in the protos (`(parley.api.v1.errors)`), and the test
suite fails when the server sends one an RPC does not declare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class Reason(StrEnum):
    """ErrorInfo.reason values: stable UPPER_SNAKE_CASE identifiers clients branch on."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    # Any RPC.
    INVALID_ARGUMENT = "INVALID_ARGUMENT", "Request fields are invalid; BadRequest names each one and why."
    MALFORMED_REQUEST = "MALFORMED_REQUEST", "The request bytes are not a valid message of the RPC's request type."
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED", "The server has no access level for this method, so nobody may call it."
    UNIMPLEMENTED = "UNIMPLEMENTED", "The server has no handler for this method."
    DATABASE_UNAVAILABLE = (
        "DATABASE_UNAVAILABLE",
        (
            "The database is not reachable right now (restarting, down, out of connections); "
            "retry after RetryInfo's delay."
        ),
    )
    SHUTTING_DOWN = "SHUTTING_DOWN", "This server is shutting down; call again (another replica will answer)."
    INTERNAL = "INTERNAL", "An unexpected server error; the message carries a request id for the logs."
    # Tokens and sessions.
    TOKEN_MISSING = "TOKEN_MISSING", "The RPC needs `authorization: Bearer <access token>` metadata and got none."
    TOKEN_INVALID = (
        "TOKEN_INVALID",
        (
            "UNAUTHENTICATED: the access token is malformed or not this server's; "
            "FAILED_PRECONDITION: the emailed token is unknown."
        ),
    )
    TOKEN_EXPIRED = (
        "TOKEN_EXPIRED",
        (
            "UNAUTHENTICATED: the access token expired (call RefreshToken); "
            "FAILED_PRECONDITION: the emailed token expired."
        ),
    )
    TOKEN_USED = "TOKEN_USED", "The emailed token was already used."
    SESSION_REVOKED = (
        "SESSION_REVOKED",
        ("The session ended (logout, password change or reset, account disabled or deleted); log in again."),
    )
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND", "No session of the caller has this refresh token."
    REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID", "The refresh token is unknown."
    REFRESH_TOKEN_REUSED = (
        "REFRESH_TOKEN_REUSED",
        ("An already rotated refresh token was presented again; its whole session is revoked."),
    )
    API_KEY_INVALID = (
        "API_KEY_INVALID",
        "The API key (`pk_...`) is unknown: mistyped, made up, or deleted with its owner.",
    )
    API_KEY_REVOKED = "API_KEY_REVOKED", "The API key was revoked, or its account is disabled."
    API_KEY_EXPIRED = "API_KEY_EXPIRED", "The API key passed its expire_time."
    API_KEY_NOT_ALLOWED = (
        "API_KEY_NOT_ALLOWED",
        "The RPC is for sessions only (no `(parley.api.v1.scope)`): log in; API keys cannot call it.",
    )
    SCOPE_REQUIRED = "SCOPE_REQUIRED", "The API key lacks the scope the RPC needs; the message names it."
    ON_BEHALF_OF_NOT_ALLOWED = (
        "ON_BEHALF_OF_NOT_ALLOWED",
        "`x-parley-on-behalf-of` was sent, but only a service account's key with SCOPE_ACT_AS_USER may send it.",
    )
    ON_BEHALF_OF_USER_INVALID = (
        "ON_BEHALF_OF_USER_INVALID",
        "`x-parley-on-behalf-of` is not the id of an ACTIVE user.",
    )
    # Accounts.
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS", "The email and password match no account."
    WRONG_PASSWORD = "WRONG_PASSWORD", "The password given to confirm the call is not the caller's."
    EMAIL_TAKEN = "EMAIL_TAKEN", "An account with this email address already exists."
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED", "The RPC needs an ACTIVE account; verify the email address first."
    ALREADY_VERIFIED = "ALREADY_VERIFIED", "The email address is already verified."
    ACCOUNT_WAITLISTED = "ACCOUNT_WAITLISTED", "The account is on the waitlist and cannot log in until approved."
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED", "An administrator disabled the account."
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED", "The account is disabled or waitlisted, so its password cannot be reset."
    ADMIN_REQUIRED = "ADMIN_REQUIRED", "Only administrators may call this RPC."
    LAST_ADMIN = "LAST_ADMIN", "The change would leave no active administrator."
    API_KEY_LIMIT = "API_KEY_LIMIT", "The owner has as many usable API keys as allowed; revoke one first."
    RATE_LIMITED = "RATE_LIMITED", "Too many attempts; RetryInfo says when to try again."
    # Resources.
    USER_NOT_FOUND = "USER_NOT_FOUND", "No user has this id."
    AGENT_NOT_FOUND = "AGENT_NOT_FOUND", "No agent has this id (or it was deleted)."
    CONVERSATION_NOT_FOUND = "CONVERSATION_NOT_FOUND", "No conversation of the caller has this id."
    MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND", "No message of the caller's conversations has this id."
    API_KEY_NOT_FOUND = "API_KEY_NOT_FOUND", "The owner has no API key with this id."
    SERVICE_ACCOUNT_NOT_FOUND = "SERVICE_ACCOUNT_NOT_FOUND", "No service account has this id."
    GRANT_NOT_FOUND = "GRANT_NOT_FOUND", "The user has no grant for this agent."
    WAITLIST_ENTRY_NOT_FOUND = "WAITLIST_ENTRY_NOT_FOUND", "No waitlist entry has this id; nothing was approved."
    SLUG_TAKEN = "SLUG_TAKEN", "Another agent has this slug."
    NO_USER_MESSAGE = "NO_USER_MESSAGE", "The conversation has no user message to derive a title from."
    NOT_A_GENERATION = (
        "NOT_A_GENERATION",
        (
            "The message is not an assistant message (for RegenerateMessage: one answering a user message), "
            "so it has no generation."
        ),
    )
    NOT_A_USER_MESSAGE = "NOT_A_USER_MESSAGE", "The message is not a user message; only those are edited."
    MESSAGE_STREAMING = (
        "MESSAGE_STREAMING",
        "The answer is still being generated; wait for its end (or CancelGeneration) first.",
    )
    NOT_AN_ANSWER = "NOT_AN_ANSWER", "Only finished assistant messages can be rated."
    OFFSET_OUT_OF_RANGE = (
        "OFFSET_OUT_OF_RANGE",
        ("The offset is past the text generated so far; metadata `length` says how far it goes."),
    )
    # Agent access (the names of access_rules.AccessReason).
    PREMIUM_REQUIRED = "PREMIUM_REQUIRED", "The agent is PREMIUM and the caller is neither premium nor granted."
    NOT_GRANTED = "NOT_GRANTED", "The agent is RESTRICTED and the caller has no valid grant."
    AGENT_DISABLED = "AGENT_DISABLED", "The agent is disabled."
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED", "Today's message quota for the agent is used up; RetryInfo says until when."


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (e.g. `user.display_name`) and why."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a caller is meant to see."""

    def __init__(
        self,
        message: str,
        *,
        reason: Reason,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    def __init__(self, violations: list[FieldViolation], *, reason: Reason = Reason.INVALID_ARGUMENT) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {summary}", reason=reason)
        self.violations = violations


class Unauthenticated(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class NotFound(DomainError):
    pass


class AlreadyExists(DomainError):
    pass


class FailedPrecondition(DomainError):
    pass


class OutOfRange(DomainError):
    """A position past the end of what exists now; valid again once it exists."""


class ResourceExhausted(DomainError):
    def __init__(self, message: str, *, retry_after: timedelta, reason: Reason) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """Try again shortly, here or on another replica (e.g. this one is shutting down)."""
