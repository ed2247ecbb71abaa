"""Who is making the current RPC.

The auth interceptor sets `current_caller` before the handler runs; handlers
read it with `require_caller()` and pass the Caller to domain services
explicitly. A ContextVar is used because interceptor and handler run in the
same task, and the value cannot leak into another RPC's task.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from parley_server.common.errors import Reason, Unauthenticated
from parley_server.db.models import Role, Scope, UserState


@dataclass(frozen=True)
class KeyCredential:
    """The API key a call came with: what it may do, and whose it is (the user
    itself, or the service account acting for the caller's user)."""

    key_id: uuid.UUID
    scopes: frozenset[Scope]
    principal_id: uuid.UUID


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the account whose rights the call has, and the
    credential it came with (a session, or an API key)."""

    user_id: uuid.UUID
    # The session of an access token; None for a call by API key.
    session_id: uuid.UUID | None
    role: Role
    state: UserState
    premium: bool
    key: KeyCredential | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)


def require_caller() -> Caller:
    """The caller of the RPC; the auth table guarantees one for non-public RPCs."""
    caller = current_caller.get()
    if caller is None:
        raise Unauthenticated("authentication required", reason=Reason.TOKEN_MISSING)
    return caller
