"""Attacks on access tokens and the authorization header.

Every bad credential must be answered UNAUTHENTICATED with an ErrorInfo
(never INTERNAL/UNKNOWN, never PERMISSION_DENIED, never success), whatever
RPC it is presented to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import jwt
import pytest

from parley.auth.v1 import auth_pb2
from parley.conversation.v1 import conversation_pb2
from tests.helpers.accounts import Account, Metadata, bearer, current_user
from tests.helpers.errors import expect_error
from tests.helpers.in_process import TEST_JWT_SECRET
from tests.helpers.stubs import Stubs

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
# HS512 with the (HS256-sized) test secret is one of the forgeries.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
Claims = dict[str, Any]


def claims_of(account: Account) -> Claims:
    """The claims of a real access token (read without checking it)."""
    return jwt.decode(account.tokens.access_token, options={"verify_signature": False})


def sign(claims: Claims, secret: str = TEST_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims: Claims) -> str:
    """An `alg: none` token: header.payload. with an empty signature."""
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def without(claims: Claims, name: str) -> Claims:
    return {k: v for k, v in claims.items() if k != name}


def changed(claims: Claims, **values: Any) -> Claims:
    return {**claims, **values}


async def refusals(stubs: Stubs, name: str, md: Metadata, reason: str) -> list[str]:
    """What is wrong with how GetCurrentUser and a USER-level RPC answer md (empty: both refused right)."""
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "GetCurrentUser": lambda: stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=md),
        # A USER-level RPC must answer the same, not PERMISSION_DENIED.
        "ListConversations": lambda: stubs.conversation.ListConversations(
            conversation_pb2.ListConversationsRequest(), metadata=md
        ),
    }
    problems = []
    for rpc, call in calls.items():
        try:
            await expect_error(call(), UNAUTHENTICATED, reason)
        except AssertionError as exc:
            problems.append(f"{name} / {rpc}: {exc}")
    return problems


async def test_real_token_is_accepted_and_its_claims_are_as_documented(stubs: Stubs) -> None:
    account = await stubs.active_account()
    claims = claims_of(account)
    assert claims["iss"] == "parley" and claims["aud"] == "parley-api"
    assert claims["sub"] == account.user.id
    uuid.UUID(claims["sid"])
    assert 14 * 60 <= claims["exp"] - claims["iat"] <= 16 * 60
    # A token re-signed by us with the same claims is accepted: the forged
    # variants below fail because of what was changed, not how they were made.
    me = await current_user(stubs, bearer(sign(claims)))
    assert me.id == account.user.id


async def test_scheme_is_case_insensitive(stubs: Stubs) -> None:
    account = await stubs.active_account()
    me = await current_user(stubs, (("authorization", f"bearer {account.tokens.access_token}"),))
    assert me.email == "ada@example.com"


async def test_expired_token_is_token_expired(stubs: Stubs) -> None:
    account = await stubs.active_account()
    now = int(time.time())
    token = sign(changed(claims_of(account), iat=now - 3600, exp=now - 60))
    details = await expect_error(current_user(stubs, bearer(token)), UNAUTHENTICATED, "TOKEN_EXPIRED")
    assert "expired" in details.message
    # The session itself is still fine: the real token keeps working.
    assert (await current_user(stubs, account.md)).id == account.user.id


async def test_token_accepted_before_is_refused_once_expired(stubs: Stubs) -> None:
    """A token that was just accepted (and so remembered as verified) expires on time."""
    account = await stubs.active_account()
    exp = int(time.time()) + 3
    token = sign(changed(claims_of(account), exp=exp))
    assert (await current_user(stubs, bearer(token))).id == account.user.id
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.1)
    await expect_error(current_user(stubs, bearer(token)), UNAUTHENTICATED, "TOKEN_EXPIRED")


# Each case turns the claims of a live session's token into a bad token.
FORGERIES: dict[str, Callable[[Claims], str]] = {
    "other secret": lambda c: sign(c, secret="another-secret-" + "y" * 40),
    "alg none": unsigned,
    "alg none, no dot": lambda c: unsigned(c)[:-1],
    "HS512 with the right secret": lambda c: sign(c, algorithm="HS512"),
    "signature stripped": lambda c: sign(c).rsplit(".", 1)[0] + ".",
    "payload swapped under a valid signature": lambda c: (
        lambda t: f"{t.split('.')[0]}.{b64(changed(c, sub=str(uuid.uuid4())))}.{t.split('.')[2]}"
    )(sign(c)),
    "wrong audience": lambda c: sign(changed(c, aud="someone-else")),
    "wrong issuer": lambda c: sign(changed(c, iss="evil")),
    "no audience": lambda c: sign(without(c, "aud")),
    "no issuer": lambda c: sign(without(c, "iss")),
    "no sid": lambda c: sign(without(c, "sid")),
    "no sub": lambda c: sign(without(c, "sub")),
    "no exp": lambda c: sign(without(c, "exp")),
    "no iat": lambda c: sign(without(c, "iat")),
    "sid not a uuid": lambda c: sign(changed(c, sid="session-1")),
    "sub not a uuid": lambda c: sign(changed(c, sub="ada")),
    "sub not a string": lambda c: sign(changed(c, sub=12345)),
    "exp not a number": lambda c: sign(changed(c, exp="tomorrow")),
    "iat in the future": lambda c: sign(changed(c, iat=int(time.time()) + 3600)),
    "garbage": lambda c: "garbage",
    "three garbage parts": lambda c: "a.b.c",
    "empty": lambda c: "",
    "binary junk": lambda c: base64.b64encode(bytes(range(256))).decode(),
}


async def test_forged_or_malformed_token_is_token_invalid(stubs: Stubs) -> None:
    account = await stubs.active_account()
    claims = claims_of(account)
    problems = []
    for name, forge in FORGERIES.items():
        md = bearer(forge(claims))
        problems += await refusals(stubs, name, md, "TOKEN_INVALID")
    assert not problems, "\n".join(problems)
    # None of it disturbed the real session.
    assert (await current_user(stubs, account.md)).id == account.user.id


async def test_sid_of_wrong_type_is_token_invalid(stubs: Stubs) -> None:
    account = await stubs.active_account()
    problems = []
    for sid in (12345, ["x"], {"a": 1}):
        md = bearer(sign(changed(claims_of(account), sid=sid)))
        problems += await refusals(stubs, f"sid={sid!r}", md, "TOKEN_INVALID")
    assert not problems, "\n".join(problems)


HEADERS: dict[str, Callable[[str], str]] = {
    "Basic scheme": lambda t: "Basic xyz",
    "Basic scheme with a real token": lambda t: f"Basic {t}",
    "token without scheme": lambda t: t,
    "Bearer without token": lambda t: "Bearer",
    "Bearer and a space only": lambda t: "Bearer ",
    "Token scheme": lambda t: f"Token {t}",
    "Bearer glued to token": lambda t: f"Bearer{t}",
    "two tokens": lambda t: f"Bearer {t} {t}",
    # Over the interceptor's 4 KB cap, under the transport's 8 KB metadata limit.
    "5 KB header": lambda t: "Bearer " + "a" * 5_000,
    "5 KB after a real token": lambda t: f"Bearer {t}" + "a" * 5_000,
}


async def test_malformed_authorization_header_is_token_invalid(stubs: Stubs) -> None:
    account = await stubs.active_account()
    problems = []
    for name, header in HEADERS.items():
        md = (("authorization", header(account.tokens.access_token)),)
        problems += await refusals(stubs, name, md, "TOKEN_INVALID")
    assert not problems, "\n".join(problems)


async def test_10kb_header_is_token_invalid(stubs: Stubs) -> None:
    account = await stubs.active_account()
    for header in ("Bearer " + "a" * 10_000, f"Bearer {account.tokens.access_token}" + "a" * 10_000):
        await expect_error(current_user(stubs, (("authorization", header),)), UNAUTHENTICATED, "TOKEN_INVALID")


async def test_20kb_header_is_unauthenticated_with_error_info(stubs: Stubs) -> None:
    md = (("authorization", "Bearer " + "a" * 20_000),)
    await expect_error(current_user(stubs, md), UNAUTHENTICATED, "TOKEN_INVALID")


async def test_missing_header_is_token_missing_on_a_user_rpc(stubs: Stubs) -> None:
    await expect_error(
        stubs.conversation.ListConversations(conversation_pb2.ListConversationsRequest()),
        UNAUTHENTICATED,
        "TOKEN_MISSING",
    )


async def test_token_naming_another_session_or_user_is_session_revoked(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    ada_claims = claims_of(ada)
    # Right signature, but no such session.
    await expect_error(
        current_user(stubs, bearer(sign(changed(ada_claims, sid=str(uuid.uuid4()))))),
        UNAUTHENTICATED,
        "SESSION_REVOKED",
    )
    # Bob's session claimed for Ada (and the other way round): refused.
    mixed = changed(ada_claims, sid=claims_of(bob)["sid"])
    await expect_error(current_user(stubs, bearer(sign(mixed))), UNAUTHENTICATED, "SESSION_REVOKED")
    mixed = changed(claims_of(bob), sid=ada_claims["sid"])
    await expect_error(current_user(stubs, bearer(sign(mixed))), UNAUTHENTICATED, "SESSION_REVOKED")
    # Both real tokens still work.
    assert (await current_user(stubs, ada.md)).id == ada.user.id
    assert (await current_user(stubs, bob.md)).id == bob.user.id


async def test_token_of_deleted_user_is_unauthenticated(stubs: Stubs) -> None:
    account = await stubs.active_account()
    second = await stubs.login("ada@example.com")
    await stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=account.password), metadata=account.md)
    for md in (account.md, second.md):
        await expect_error(current_user(stubs, md), UNAUTHENTICATED, "SESSION_REVOKED")
    # Even a freshly signed, unexpired token for the old ids is refused.
    await expect_error(current_user(stubs, bearer(sign(claims_of(account)))), UNAUTHENTICATED, "SESSION_REVOKED")
    await expect_error(
        stubs.auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=second.tokens.refresh_token)),
        UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


async def test_public_rpc_ignores_a_bad_token(stubs: Stubs) -> None:
    """A stale token in a client's default metadata must not break Login."""
    await stubs.active_account()
    for header in ("Bearer garbage", "Basic xyz", "Bearer " + "a" * 5000):
        response = await stubs.auth.Login(
            auth_pb2.LoginRequest(email="ada@example.com", password="correct horse battery staple"),
            metadata=(("authorization", header),),
        )
        assert response.tokens.access_token


async def test_refresh_token_is_not_an_access_token_and_vice_versa(stubs: Stubs) -> None:
    account = await stubs.active_account()
    await expect_error(current_user(stubs, bearer(account.tokens.refresh_token)), UNAUTHENTICATED, "TOKEN_INVALID")
    await expect_error(
        stubs.auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=account.tokens.access_token)),
        UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )
