"""Authentication and coarse authorisation from the access policy table.

Runs inside the error interceptor, so it raises domain errors and lets that
interceptor shape the status. Resource ownership is not decided here: that is
a domain rule (another user's conversation is NOT_FOUND, not DENIED).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from parley_server.accounts.api_keys import ApiKeyService
from parley_server.accounts.session_service import SessionService
from parley_server.common.caller import Caller, current_caller, current_client_address
from parley_server.common.errors import PermissionDenied, Reason, Unauthenticated
from parley_server.db.models import UserState
from parley_server.transport.interceptors.access_policy import Access, access_for, scope_for
from parley_server.transport.interceptors.base import AroundInterceptor
from parley_server.transport.interceptors.request_context import client_address, current_request

BEARER = "bearer "
# The whole authorization metadata value: "Bearer " and the access token.
MAX_AUTHORIZATION_LENGTH = 4096
# Names the user a service account's key acts for.
ON_BEHALF_OF = "x-parley-on-behalf-of"


class AuthInterceptor(AroundInterceptor):
    def __init__(self, sessions: SessionService, keys: ApiKeyService) -> None:
        self._sessions = sessions
        self._keys = keys

    @asynccontextmanager
    async def around(self, context: grpc.aio.ServicerContext[Any, Any], method_name: str) -> AsyncIterator[None]:
        access = access_for(method_name)
        if access is None:
            raise PermissionDenied("this method is not open to callers", reason=Reason.METHOD_NOT_ALLOWED)
        caller = await self._caller(context, required=access is not Access.PUBLIC)
        if caller is not None:
            _authorise(caller, access)
            if caller.key is not None:
                _authorise_key(caller, method_name)
            info = current_request.get()
            if info is not None:
                info.user_id = str(caller.user_id)
                if caller.key is not None:
                    info.api_key_id = str(caller.key.key_id)
                    info.principal_id = str(caller.key.principal_id)
        previous = current_caller.get(), current_client_address.get()
        current_caller.set(caller)
        current_client_address.set(client_address(context))
        try:
            yield
        finally:
            # set, not reset(token): see logging_interceptor.
            current_caller.set(previous[0])
            current_client_address.set(previous[1])

    async def _caller(self, context: grpc.aio.ServicerContext[Any, Any], *, required: bool) -> Caller | None:
        """The authenticated caller; None for public RPCs called without a token.

        A public RPC called with a token ignores it: a stale token in a
        client's default metadata must not break Login or RefreshToken.
        """
        header = _authorization(context)
        if not required:
            return None
        if header is None:
            raise Unauthenticated(
                "authentication required: send `authorization: Bearer <token>`", reason=Reason.TOKEN_MISSING
            )
        if not header.lower().startswith(BEARER) or len(header) > MAX_AUTHORIZATION_LENGTH:
            raise Unauthenticated("authorization metadata must be `Bearer <token>`", reason=Reason.TOKEN_INVALID)
        token = header[len(BEARER) :].strip()
        on_behalf_of = _metadata(context, ON_BEHALF_OF)
        if self._keys.is_key(token):
            return await self._keys.authenticate(token, on_behalf_of)
        if on_behalf_of is not None:
            raise PermissionDenied(
                f"{ON_BEHALF_OF} needs a service account's API key", reason=Reason.ON_BEHALF_OF_NOT_ALLOWED
            )
        return await self._sessions.authenticate(token)


def _authorization(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    return _metadata(context, "authorization")


def _metadata(context: grpc.aio.ServicerContext[Any, Any], name: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == name and isinstance(value, str):
            return value
    return None


def _authorise(caller: Caller, access: Access) -> None:
    if access is Access.ADMIN and not caller.is_admin:
        raise PermissionDenied("administrators only", reason=Reason.ADMIN_REQUIRED)
    if access is Access.USER and caller.state is not UserState.ACTIVE:
        raise PermissionDenied("verify your email address first", reason=Reason.EMAIL_NOT_VERIFIED)


def _authorise_key(caller: Caller, method_name: str) -> None:
    """A call by API key: the RPC must name a scope (`(parley.api.v1.scope)`) that the key has."""
    assert caller.key is not None
    scope = scope_for(method_name)
    if scope is None:
        raise PermissionDenied("this RPC is for sessions only; log in to call it", reason=Reason.API_KEY_NOT_ALLOWED)
    if scope not in caller.key.scopes:
        raise PermissionDenied(
            f"this API key lacks SCOPE_{scope.name}, which the RPC needs", reason=Reason.SCOPE_REQUIRED
        )
