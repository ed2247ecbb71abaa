"""Who may call each RPC: the single table the auth interceptor enforces.

Parley's own RPCs get their level from the `(parley.api.v1.access)` option in
the protos, the one place it is stated. The standard services (health,
reflection) are not Parley's protos and carry no such option, so they are
listed here. A method missing from the table, including a Parley RPC without
the option, is refused (fail closed), and a test fails for such an RPC.
"""

from __future__ import annotations

import enum

from parley.api.v1 import access_pb2
from parley.client import rpcs
from parley_server.accounts.convert import SCOPE_FROM_PROTO
from parley_server.common.errors import Reason
from parley_server.db.models import Scope


class Access(enum.Enum):
    """The levels of the proto's `parley.api.v1.Access` (see its comments)."""

    # No token needed.
    PUBLIC = access_pb2.ACCESS_PUBLIC
    # Any logged-in account that is not locked out, even before email
    # verification: it must be able to see itself, resend the verification
    # email, log out and delete itself.
    AUTHENTICATED = access_pb2.ACCESS_AUTHENTICATED
    # An ACTIVE account: email verified, not waitlisted or disabled.
    USER = access_pb2.ACCESS_USER
    # Role ADMIN.
    ADMIN = access_pb2.ACCESS_ADMIN


# Services of the gRPC libraries, open to everyone like any public RPC.
STANDARD_SERVICES: dict[str, Access] = {
    "/grpc.health.v1.Health/Check": Access.PUBLIC,
    "/grpc.health.v1.Health/Watch": Access.PUBLIC,
    "/grpc.health.v1.Health/List": Access.PUBLIC,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Access.PUBLIC,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Access.PUBLIC,
}

LEVELS = {level.value: level for level in Access}

POLICY: dict[str, Access] = {
    **{rpcs.full_name(m): LEVELS[rpcs.access(m)] for m in rpcs.methods() if rpcs.access(m) in LEVELS},
    **STANDARD_SERVICES,
}


def access_for(method: str) -> Access | None:
    """The access level of a full method name, or None when it is not in the table."""
    return POLICY.get(method)


# The scope an API key needs, from the `(parley.api.v1.scope)` option; an RPC
# without one (and every standard service) is for sessions only.
KEY_SCOPES: dict[str, Scope] = {
    rpcs.full_name(m): SCOPE_FROM_PROTO[rpcs.scope(m)] for m in rpcs.methods() if rpcs.scope(m) in SCOPE_FROM_PROTO
}


def scope_for(method: str) -> Scope | None:
    """The scope a key needs to call a full method name; None: keys may not call it."""
    return KEY_SCOPES.get(method)


# (status code, reason) pairs that any RPC can return, from the interceptors
# and the server rather than from the RPC's own rules.
ANY_RPC_ERRORS: tuple[tuple[str, Reason], ...] = (
    ("INVALID_ARGUMENT", Reason.MALFORMED_REQUEST),
    ("UNAVAILABLE", Reason.DATABASE_UNAVAILABLE),
    ("INTERNAL", Reason.INTERNAL),
)
# What the auth interceptor answers a caller without a usable token or API key.
TOKEN_ERRORS: tuple[tuple[str, Reason], ...] = tuple(
    ("UNAUTHENTICATED", reason)
    for reason in (
        Reason.TOKEN_MISSING,
        Reason.TOKEN_INVALID,
        Reason.TOKEN_EXPIRED,
        Reason.SESSION_REVOKED,
        Reason.API_KEY_INVALID,
        Reason.API_KEY_REVOKED,
        Reason.API_KEY_EXPIRED,
    )
)
# What a call by API key can meet besides: an RPC it may not call, acting for
# a user, the per-key rate limit (see the auth interceptor).
KEY_ERRORS: tuple[tuple[str, Reason], ...] = (
    ("PERMISSION_DENIED", Reason.API_KEY_NOT_ALLOWED),
    ("PERMISSION_DENIED", Reason.SCOPE_REQUIRED),
    ("PERMISSION_DENIED", Reason.ON_BEHALF_OF_NOT_ALLOWED),
    ("PERMISSION_DENIED", Reason.ON_BEHALF_OF_USER_INVALID),
    ("RESOURCE_EXHAUSTED", Reason.RATE_LIMITED),
)
LEVEL_ERRORS: dict[Access, tuple[tuple[str, Reason], ...]] = {
    Access.PUBLIC: (),
    Access.AUTHENTICATED: (*TOKEN_ERRORS, *KEY_ERRORS),
    Access.USER: (*TOKEN_ERRORS, *KEY_ERRORS, ("PERMISSION_DENIED", Reason.EMAIL_NOT_VERIFIED)),
    Access.ADMIN: (*TOKEN_ERRORS, *KEY_ERRORS, ("PERMISSION_DENIED", Reason.ADMIN_REQUIRED)),
}


def implied_errors(access: Access) -> tuple[tuple[str, Reason], ...]:
    """The errors every RPC of this access level can return; the protos'
    `(parley.api.v1.errors)` option lists only each RPC's own on top."""
    return (*ANY_RPC_ERRORS, *LEVEL_ERRORS[access])
