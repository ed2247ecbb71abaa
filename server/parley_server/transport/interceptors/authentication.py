"""Authentication and coarse authorisation from the access policy table.

Runs inside the interceptor's error step, so it raises domain errors and lets
that step shape the status. Resource ownership is not decided here: that is
a domain rule (another user's conversation is NOT_FOUND, not DENIED).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from parley_server.accounts.api_keys import ApiKeyService
from parley_server.accounts.session_service import SessionService
from parley_server.common.caller import Caller
from parley_server.common.errors import PermissionDenied, Reason, Unauthenticated
from parley_server.db.models import Scope, UserState
from parley_server.transport.interceptors.access_policy import Access
from parley_server.transport.interceptors.request_context import Metadata

BEARER = "bearer "
# The whole authorization metadata value: "Bearer " and the access token.
MAX_AUTHORIZATION_LENGTH = 4096
# Names the user a service account's key acts for.
ON_BEHALF_OF = "x-parley-on-behalf-of"
# grpc's peer properties holding a verified client certificate's names.
CERTIFICATE_NAME_PROPERTIES = ("x509_subject_alternative_name", "x509_common_name")
# The connection's peer properties (grpc's ServicerContext.auth_context).
AuthContext = Callable[[], Mapping[str, Iterable[bytes]]]


def certificate_names(auth_context: AuthContext) -> list[str]:
    """The names of the client certificate of a mutual-TLS connection, subject
    alternative names first, then the subject common name; empty otherwise.
    gRPC sets them only for a certificate it verified against the client CA."""
    properties = auth_context()
    names = (name.decode() for prop in CERTIFICATE_NAME_PROPERTIES for name in properties.get(prop, ()))
    return list(dict.fromkeys(names))


class Authenticator:
    """The interceptor's auth step: who calls, and whether they may call this method."""

    def __init__(self, sessions: SessionService, keys: ApiKeyService) -> None:
        self._sessions = sessions
        self._keys = keys

    async def caller(
        self, metadata: Metadata, access: Access | None, scope: Scope | None, auth_context: AuthContext
    ) -> Caller | None:
        """The caller allowed to make a call of this access level and, by API
        key, of this scope (None: sessions only); None for a public RPC.
        Raises the domain error to answer otherwise."""
        if access is None:
            raise PermissionDenied("this method is not open to callers", reason=Reason.METHOD_NOT_ALLOWED)
        caller = await self._caller(metadata, auth_context, required=access is not Access.PUBLIC)
        if caller is not None:
            _authorise(caller, access)
            if caller.key is not None:
                _authorise_key(caller, scope)
        return caller

    async def _caller(self, metadata: Metadata, auth_context: AuthContext, *, required: bool) -> Caller | None:
        """The authenticated caller; None for public RPCs called without a token.

        A public RPC called with a token ignores it: a stale token in a
        client's default metadata must not break Login or RefreshToken.
        Without a token, a client certificate bound to a key is the credential.
        """
        if not required:
            return None
        header = _metadata(metadata, "authorization")
        on_behalf_of = _metadata(metadata, ON_BEHALF_OF)
        if header is None:
            names = certificate_names(auth_context)
            caller = await self._keys.authenticate_certificate(names, on_behalf_of) if names else None
            if caller is None:
                raise Unauthenticated(
                    "authentication required: send `authorization: Bearer <token>`", reason=Reason.TOKEN_MISSING
                )
            return caller
        if not header.lower().startswith(BEARER) or len(header) > MAX_AUTHORIZATION_LENGTH:
            raise Unauthenticated("authorization metadata must be `Bearer <token>`", reason=Reason.TOKEN_INVALID)
        token = header[len(BEARER) :].strip()
        if self._keys.is_key(token):
            return await self._keys.authenticate(token, on_behalf_of, lambda: certificate_names(auth_context))
        if on_behalf_of is not None:
            raise PermissionDenied(
                f"{ON_BEHALF_OF} needs a service account's API key", reason=Reason.ON_BEHALF_OF_NOT_ALLOWED
            )
        return await self._sessions.authenticate(token)


def _metadata(metadata: Metadata, name: str) -> str | None:
    for key, value in metadata:
        if key == name and isinstance(value, str):
            return value
    return None


def _authorise(caller: Caller, access: Access) -> None:
    if access is Access.ADMIN and not caller.is_admin:
        raise PermissionDenied("administrators only", reason=Reason.ADMIN_REQUIRED)
    if access is Access.USER and caller.state is not UserState.ACTIVE:
        raise PermissionDenied("verify your email address first", reason=Reason.EMAIL_NOT_VERIFIED)


def _authorise_key(caller: Caller, scope: Scope | None) -> None:
    """A call by API key: the RPC must name a scope (`(parley.api.v1.scope)`) that the key has."""
    assert caller.key is not None
    if scope is None:
        raise PermissionDenied("this RPC is for sessions only; log in to call it", reason=Reason.API_KEY_NOT_ALLOWED)
    if scope not in caller.key.scopes:
        raise PermissionDenied(
            f"this API key lacks SCOPE_{scope.name}, which the RPC needs", reason=Reason.SCOPE_REQUIRED
        )
