"""Conversions between accounts' domain values and the auth protobuf messages."""

from __future__ import annotations

from parley.auth.v1 import auth_pb2
from parley_server.accounts.session_service import TokenPair
from parley_server.common.convert import timestamp
from parley_server.db.models import Role, User, UserState

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
