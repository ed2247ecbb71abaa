"""Service accounts: principals for other programs, managed by administrators.

A service account is a row of `users` with kind SERVICE_ACCOUNT, so whatever
a user owns (conversations, usage, agent grants) works for it unchanged. It
has no usable email or password: its email is synthetic, under the reserved
`.invalid` domain (it keeps the column unique and NOT NULL and is never
mailed), its password hash is empty (no password verifies against it), and
AuthService never finds it by email, so it cannot log in or reset a password.
It is ACTIVE from the start and acts only through its API keys, whose rules
are ApiKeyService's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.accounts.api_keys import ApiKeyService
from parley_server.common.errors import NotFound, Reason
from parley_server.common.pagination import Page, Paginator, newest_first, time_id_keyset
from parley_server.common.validation import MAX_DISPLAY_NAME_LENGTH, Violations, only_uuid
from parley_server.db.database import Database
from parley_server.db.models import ApiKey, Scope, User, UserKind, UserState

# Domain of the synthetic email addresses (RFC 2606: never resolves).
SYNTHETIC_EMAIL_DOMAIN = "service-accounts.parley.invalid"


class ServiceAccountService:
    def __init__(self, database: Database, paginator: Paginator, keys: ApiKeyService) -> None:
        self._db = database
        self._paginator = paginator
        self._keys = keys

    async def create(self, display_name: str) -> User:
        v = Violations()
        display_name = v.text(
            "service_account.display_name", display_name, max_length=MAX_DISPLAY_NAME_LENGTH, required=True
        )
        v.raise_if_any()
        account_id = uuid.uuid4()
        async with self._db.transaction() as db:
            account = User(
                id=account_id,
                email=f"{account_id}@{SYNTHETIC_EMAIL_DOMAIN}",
                password_hash="",
                display_name=display_name,
                state=UserState.ACTIVE,
                kind=UserKind.SERVICE_ACCOUNT,
            )
            db.add(account)
            await db.flush()
            await db.refresh(account)
        return account

    async def list_accounts(self, page_size: int, page_token: str) -> Page[User]:
        v = Violations()
        size = self._paginator.page_size(v, page_size)
        scope = "ListServiceAccounts"
        after = self._paginator.decode(v, page_token, scope, 2)
        v.raise_if_any()
        query = newest_first(
            select(User).where(User.kind == UserKind.SERVICE_ACCOUNT), User.create_time, User.id, after, size
        )
        async with self._db.transaction() as db:
            rows = list((await db.execute(query)).scalars())
        return self._paginator.page(rows, size, scope, lambda user: time_id_keyset(user.create_time, user.id))

    async def delete(self, account_id: str) -> None:
        """Delete the account; its keys and conversations go with it (cascade)."""
        parsed = only_uuid("service_account_id", account_id)
        async with self._db.transaction() as db:
            await self._require(db, parsed)
            await db.execute(delete(User).where(User.id == parsed))

    async def create_key(
        self,
        account_id: str,
        name: str,
        scopes: Sequence[Scope | None],
        expire_time: datetime | None,
        certificate_identity: str = "",
    ) -> tuple[ApiKey, str]:
        parsed = only_uuid("service_account_id", account_id)
        async with self._db.transaction() as db:
            account = await self._require(db, parsed)
            return await self._keys.create(db, account, name, scopes, expire_time, certificate_identity)

    async def list_keys(self, account_id: str, page_size: int, page_token: str) -> Page[ApiKey]:
        parsed = only_uuid("service_account_id", account_id)
        async with self._db.transaction() as db:
            await self._require(db, parsed)
        return await self._keys.list_keys(parsed, page_size, page_token, method="ListServiceAccountKeys")

    async def revoke_key(self, account_id: str, key_id: str) -> ApiKey:
        v = Violations()
        account = v.uuid("service_account_id", account_id)
        key = v.uuid("api_key_id", key_id)
        v.raise_if_any()
        assert account is not None and key is not None
        async with self._db.transaction() as db:
            await self._require(db, account)
        return await self._keys.revoke(account, key)

    @staticmethod
    async def _require(db: AsyncSession, account_id: uuid.UUID) -> User:
        account = (
            await db.execute(select(User).where(User.id == account_id, User.kind == UserKind.SERVICE_ACCOUNT))
        ).scalar_one_or_none()
        if account is None:
            raise NotFound("no service account has this id", reason=Reason.SERVICE_ACCOUNT_NOT_FOUND)
        return account
