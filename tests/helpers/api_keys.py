"""API keys and service accounts made through the RPCs, and a key as call metadata."""

from __future__ import annotations

from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from tests.helpers.accounts import Account, Metadata, bearer
from tests.helpers.stubs import Stubs

ALL_USER_SCOPES = (access_pb2.SCOPE_READ, access_pb2.SCOPE_WRITE, access_pb2.SCOPE_CHAT)


def key_md(secret: str, on_behalf_of: str | None = None) -> Metadata:
    """Metadata of a call by key, optionally on behalf of a user."""
    if on_behalf_of is None:
        return bearer(secret)
    return (*bearer(secret), ("x-parley-on-behalf-of", on_behalf_of))


async def user_key(
    stubs: Stubs, account: Account, *scopes: access_pb2.Scope, name: str = "test key"
) -> tuple[api_key_pb2.ApiKey, str]:
    """A key of account (CreateApiKey) with scopes (default: read, write, chat), and its secret."""
    response = await stubs.api_keys.CreateApiKey(
        api_key_pb2.CreateApiKeyRequest(api_key=api_key_pb2.ApiKey(name=name, scopes=scopes or ALL_USER_SCOPES)),
        metadata=account.md,
    )
    return response.api_key, response.secret


async def service_account(stubs: Stubs, admin: Account, name: str = "backend") -> api_key_pb2.ServiceAccount:
    response: api_key_pb2.CreateServiceAccountResponse = await stubs.service_accounts.CreateServiceAccount(
        api_key_pb2.CreateServiceAccountRequest(service_account=api_key_pb2.ServiceAccount(display_name=name)),
        metadata=admin.md,
    )
    return response.service_account


async def service_account_key(
    stubs: Stubs, admin: Account, account_id: str, *scopes: access_pb2.Scope
) -> tuple[api_key_pb2.ApiKey, str]:
    """A key of the service account with scopes (default: read, write, chat), and its secret."""
    response = await stubs.service_accounts.CreateServiceAccountKey(
        api_key_pb2.CreateServiceAccountKeyRequest(
            service_account_id=account_id,
            api_key=api_key_pb2.ApiKey(name="backend key", scopes=scopes or ALL_USER_SCOPES),
        ),
        metadata=admin.md,
    )
    return response.api_key, response.secret
