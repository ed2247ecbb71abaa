"""Conversions between accounts' domain values and the auth, API key and scope protobuf messages."""

from __future__ import annotations

from collections.abc import Iterable

from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from parley.auth.v1 import auth_pb2
from parley_server.accounts.session_service import TokenPair
from parley_server.common.convert import timestamp
from parley_server.db.models import ApiKey, Role, Scope, User, UserState

ROLE_TO_PROTO = {Role.USER: auth_pb2.ROLE_USER, Role.ADMIN: auth_pb2.ROLE_ADMIN}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}
STATE_TO_PROTO = {
    UserState.PENDING_VERIFICATION: auth_pb2.USER_STATE_PENDING_VERIFICATION,
    UserState.ACTIVE: auth_pb2.USER_STATE_ACTIVE,
    UserState.WAITLISTED: auth_pb2.USER_STATE_WAITLISTED,
    UserState.DISABLED: auth_pb2.USER_STATE_DISABLED,
}
STATE_FROM_PROTO = {v: k for k, v in STATE_TO_PROTO.items()}


def user_to_proto(user: User) -> auth_pb2.User:
    return auth_pb2.User(
        id=str(user.id),
        email=user.email,
        display_name=user.display_name,
        role=ROLE_TO_PROTO[user.role],
        state=STATE_TO_PROTO[user.state],
        premium=user.premium,
        email_verified=user.email_verified,
        create_time=timestamp(user.create_time),
        last_login_time=timestamp(user.last_login_time),
    )


def tokens_to_proto(tokens: TokenPair) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access_token=tokens.access_token,
        access_token_expire_time=timestamp(tokens.access_token_expire_time),
        refresh_token=tokens.refresh_token,
        refresh_token_expire_time=timestamp(tokens.refresh_token_expire_time),
    )


SCOPE_TO_PROTO = {
    Scope.READ: access_pb2.SCOPE_READ,
    Scope.WRITE: access_pb2.SCOPE_WRITE,
    Scope.CHAT: access_pb2.SCOPE_CHAT,
    Scope.ADMIN: access_pb2.SCOPE_ADMIN,
    Scope.ACT_AS_USER: access_pb2.SCOPE_ACT_AS_USER,
}
# By number: a request may carry numbers the enum does not name.
SCOPE_FROM_PROTO: dict[int, Scope] = {v: k for k, v in SCOPE_TO_PROTO.items()}


def scopes_from_proto(values: Iterable[int]) -> list[Scope | None]:
    """The request's scopes; None for a value that is no scope (the domain says why)."""
    return [SCOPE_FROM_PROTO.get(value) for value in values]


def api_key_to_proto(key: ApiKey) -> api_key_pb2.ApiKey:
    return api_key_pb2.ApiKey(
        id=str(key.id),
        name=key.name,
        prefix=key.prefix,
        scopes=[SCOPE_TO_PROTO[scope] for scope in key.scopes],
        expire_time=timestamp(key.expire_time),
        create_time=timestamp(key.create_time),
        last_use_time=timestamp(key.last_use_time),
        revoke_time=timestamp(key.revoke_time),
        owner_id=str(key.user_id),
        certificate_identity=key.certificate_identity or "",
    )


def service_account_to_proto(account: User) -> api_key_pb2.ServiceAccount:
    return api_key_pb2.ServiceAccount(
        id=str(account.id), display_name=account.display_name, create_time=timestamp(account.create_time)
    )
