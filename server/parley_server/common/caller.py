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
from parley_server.db.models import Role, UserState


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the account and the session its token belongs to."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: Role
    state: UserState
    premium: bool

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)
# Network address of the client ("127.0.0.1"), for per-client rate limits.
current_client_address: ContextVar[str] = ContextVar("current_client_address", default="")


def require_caller() -> Caller:
    """The caller of the RPC; the auth table guarantees one for non-public RPCs."""
    caller = current_caller.get()
    if caller is None:
        raise Unauthenticated("authentication required", reason=Reason.TOKEN_MISSING)
    return caller
