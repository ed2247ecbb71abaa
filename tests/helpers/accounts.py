"""Test accounts: the password they share, their tokens as call metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.auth.v1 import auth_pb2

if TYPE_CHECKING:
    from tests.helpers.stubs import Stubs

PASSWORD = "correct horse battery staple"
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Account:
    """A logged-in test user."""

    user: auth_pb2.User
    tokens: auth_pb2.TokenPair
    password: str = PASSWORD

    @property
    def md(self) -> Metadata:
        return bearer(self.tokens.access_token)


async def current_user(stubs: Stubs, md: Metadata) -> auth_pb2.User:
    """GetCurrentUser with md: who the server takes the caller for."""
    response: auth_pb2.GetCurrentUserResponse = await stubs.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=md
    )
    return response.user
