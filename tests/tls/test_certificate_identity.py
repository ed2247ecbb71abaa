"""A service account's key bound to a client certificate identity: mutual TLS as the credential."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley_server.app import App
from parley_server.transport.server import RunningServer
from tests.helpers.accounts import Account, Metadata, bearer
from tests.helpers.api_keys import ALL_USER_SCOPES, key_md, service_account
from tests.helpers.certificates import Pair, Pki, tls_server
from tests.helpers.errors import ErrorDetails, error_details
from tests.helpers.stubs import Stubs

IDENTITY = "billing.example.com"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def mtls(app: App, pki: Pki) -> AsyncIterator[RunningServer]:
    async with tls_server(app, pki.server(), client_ca=pki.ca) as running:
        yield running


async def bound_key(
    stubs: Stubs, admin: Account, identity: str, *scopes: access_pb2.Scope
) -> tuple[api_key_pb2.ServiceAccount, api_key_pb2.ApiKey, str]:
    """A service account and its key bound to identity, with its secret."""
    account = await service_account(stubs, admin)
    response = await stubs.service_accounts.CreateServiceAccountKey(
        api_key_pb2.CreateServiceAccountKeyRequest(
            service_account_id=account.id,
            api_key=api_key_pb2.ApiKey(name="billing", scopes=scopes or ALL_USER_SCOPES, certificate_identity=identity),
        ),
        metadata=admin.md,
    )
    return account, response.api_key, response.secret


def _refused(error: grpc.aio.AioRpcError, code: grpc.StatusCode, reason: str) -> ErrorDetails:
    details = error_details(error)
    assert (details.code, details.reason) == (code, reason), details
    return details


async def who(running: RunningServer, pki: Pki, client: Pair | None, md: Metadata = ()) -> str:
    """The user id GetCurrentUser answers on a new connection with client's certificate."""
    channel = grpc.aio.secure_channel(f"127.0.0.1:{running.port}", pki.tls(client).credentials())
    async with channel:
        response = await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=md
        )
    return str(response.user.id)


async def test_the_certificate_alone_calls_as_the_bound_keys_service_account(
    stubs: Stubs, alice: Account, mtls: RunningServer, pki: Pki
) -> None:
    admin = await stubs.admin_account()
    account, key, _ = await bound_key(stubs, admin, IDENTITY, *ALL_USER_SCOPES, access_pb2.SCOPE_ACT_AS_USER)
    assert key.certificate_identity == IDENTITY
    certificate = pki.issue("billing", IDENTITY)
    assert await who(mtls, pki, certificate) == account.id
    # On behalf of a user, as with the key's secret.
    assert await who(mtls, pki, certificate, (("x-parley-on-behalf-of", alice.user.id),)) == alice.user.id


async def test_the_subject_common_name_is_an_identity_too(stubs: Stubs, mtls: RunningServer, pki: Pki) -> None:
    admin = await stubs.admin_account()
    account, _, _ = await bound_key(stubs, admin, "billing-backend")
    certificate = pki.issue("by-cn", "other.example.com", common_name="billing-backend")
    assert await who(mtls, pki, certificate) == account.id


async def test_a_certificate_bound_to_no_key_still_needs_a_token(stubs: Stubs, mtls: RunningServer, pki: Pki) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await who(mtls, pki, pki.issue("unbound", "nobody.example.com"))
    _refused(raised.value, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_the_bound_keys_secret_works_only_with_its_certificate(
    stubs: Stubs, mtls: RunningServer, pki: Pki
) -> None:
    admin = await stubs.admin_account()
    account, _, secret = await bound_key(stubs, admin, IDENTITY)
    # Over plaintext (the suite's server) and with another certificate: refused.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=key_md(secret))
    _refused(raised.value, grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await who(mtls, pki, pki.issue("someone-else", "someone.example.com"), bearer(secret))
    _refused(raised.value, grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    assert await who(mtls, pki, pki.issue("billing", IDENTITY), bearer(secret)) == account.id


async def test_the_bound_keys_scopes_apply(stubs: Stubs, mtls: RunningServer, pki: Pki) -> None:
    admin = await stubs.admin_account()
    await bound_key(stubs, admin, IDENTITY, access_pb2.SCOPE_READ)
    channel = grpc.aio.secure_channel(f"127.0.0.1:{mtls.port}", pki.tls(pki.issue("billing", IDENTITY)).credentials())
    async with channel:
        call = chat_pb2_grpc.ChatServiceStub(channel).SendMessage(
            chat_pb2.SendMessageRequest(conversation_id="00000000-0000-0000-0000-000000000000", content="hi")
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
    _refused(raised.value, grpc.StatusCode.PERMISSION_DENIED, "SCOPE_REQUIRED")


async def test_a_revoked_bound_key_no_longer_lets_the_certificate_in(
    stubs: Stubs, mtls: RunningServer, pki: Pki
) -> None:
    admin = await stubs.admin_account()
    account, key, _ = await bound_key(stubs, admin, IDENTITY)
    certificate = pki.issue("billing", IDENTITY)
    assert await who(mtls, pki, certificate) == account.id
    await stubs.service_accounts.RevokeServiceAccountKey(
        api_key_pb2.RevokeServiceAccountKeyRequest(service_account_id=account.id, api_key_id=key.id),
        metadata=admin.md,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await who(mtls, pki, certificate)
    _refused(raised.value, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    # The identity is free again for a new key.
    replacement, _, _ = await bound_key(stubs, admin, IDENTITY)
    assert await who(mtls, pki, certificate) == replacement.id


async def test_an_identity_is_for_one_unrevoked_service_account_key(stubs: Stubs, alice: Account) -> None:
    admin = await stubs.admin_account()
    await bound_key(stubs, admin, IDENTITY)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await bound_key(stubs, admin, IDENTITY)
    details = _refused(raised.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert details.violations == {"api_key.certificate_identity": "another unrevoked key is bound to this identity"}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stubs.api_keys.CreateApiKey(
            api_key_pb2.CreateApiKeyRequest(
                api_key=api_key_pb2.ApiKey(name="mine", scopes=ALL_USER_SCOPES, certificate_identity="ada.example.com")
            ),
            metadata=alice.md,
        )
    details = _refused(raised.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert details.violations == {"api_key.certificate_identity": "is only for keys of service accounts"}
