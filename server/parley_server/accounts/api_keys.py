"""API keys: creating, listing and revoking them, and turning a key into a Caller.

One service for every owner, a user or a service account: the rules (name,
scopes, expiry, secret, revocation) are the same, only who may have which
scope differs (SCOPE_ADMIN needs an admin owner, SCOPE_ACT_AS_USER a service
account).

A secret is `pk_` and 256 random bits, so the auth interceptor tells it from a
JWT by its prefix, and SHA-256 is a safe stored form (there is nothing to
brute-force, unlike a password). A call by key costs no database round trip
while the key is cached (as long as a checked session is, so revoking a key
takes effect on every replica within that time); a cache miss looks the key
up and stamps its last_use_time in the same statement. Each call is counted
against the per-key rate limit, whose counts PostgreSQL keeps for every
replica (written in batches: see BufferedLimit).

A service account's key may be bound to a client certificate identity (see
`certificate_identity` in the protos): under mutual TLS, a call whose
certificate carries it needs no secret, and the key's secret works only with
that certificate. The certificate's names come from the TLS layer, which has
already checked the certificate against the client CA; this module only
matches them. Lookups by identity are cached like lookups by secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.accounts.session_service import LOCKED_OUT_STATES
from parley_server.accounts.tokens import hash_secret, new_secret
from parley_server.common.caller import Caller, KeyCredential
from parley_server.common.clock import utcnow
from parley_server.common.errors import FailedPrecondition, NotFound, PermissionDenied, Reason, Unauthenticated
from parley_server.common.pagination import Page, Paginator, newest_first, time_id_keyset
from parley_server.common.rate_limiter import BufferedLimit
from parley_server.common.ttl_cache import TtlCache
from parley_server.common.validation import Violations, only_uuid
from parley_server.db.database import Database
from parley_server.db.models import ApiKey, Role, Scope, User, UserKind, UserState

KEY_PREFIX = "pk_"
# Characters of the secret shown in lists: the prefix and 9 of the random part.
SHOWN_PREFIX_LENGTH = 12
MAX_KEY_NAME_LENGTH = 100
# Longer than any secret we issue (46 characters), short enough to hash cheaply.
MAX_SECRET_LENGTH = 100
# Usable (neither revoked nor expired) keys one owner may hold: enough for a
# key per deployment and environment, few enough that a leaked admin session
# or a runaway script cannot fill the table.
MAX_USABLE_KEYS_PER_OWNER = 100
# Keys and acted-for users a process keeps checked: a bound on memory, since a
# service account names users by id in a header.
MAX_CACHED_KEYS = 100_000
MAX_CACHED_USERS = 100_000
# The per-key rate limit counts calls per minute; each replica writes its
# counts every tenth of a second, so it learns of the others' that often.
RATE_LIMIT_WINDOW = timedelta(minutes=1)
RATE_LIMIT_FLUSH_SECONDS = 0.1
MAX_CERTIFICATE_IDENTITY_LENGTH = 255
IDENTITY_TAKEN = "another unrevoked key is bound to this identity"
# The names of the client certificate of the connection a call came on
# (empty without mutual TLS); asked for only when a key needs them.
CertificateNames = Callable[[], Sequence[str]]


@dataclass(frozen=True)
class _KeyState:
    """What a key lookup found, cached per replica for the session-cache time."""

    key_id: uuid.UUID
    owner_id: uuid.UUID
    owner_kind: UserKind
    role: Role
    state: UserState
    premium: bool
    scopes: frozenset[Scope]
    expire_time: datetime | None
    revoke_time: datetime | None
    certificate_identity: str | None


class _NoKeyBound(Exception):
    """No key is bound to any name of a client certificate."""


@dataclass(frozen=True)
class _UserState:
    """The user a service account acts for, cached like a key."""

    kind: UserKind
    role: Role
    state: UserState
    premium: bool


class ApiKeyService:
    def __init__(
        self,
        database: Database,
        paginator: Paginator,
        calls: BufferedLimit,
        *,
        cache_seconds: float,
    ) -> None:
        self._db = database
        self._paginator = paginator
        self._calls = calls
        # key hash -> what the lookup found; unknown hashes are not cached
        self._keys: TtlCache[bytes, _KeyState] = TtlCache(cache_seconds, MAX_CACHED_KEYS)
        # a certificate's names -> the key bound to the first of them; none bound is not cached
        self._certificates: TtlCache[tuple[str, ...], _KeyState] = TtlCache(cache_seconds, MAX_CACHED_KEYS)
        # user id -> the user a service account acts for, or None when there is none
        self._users: TtlCache[uuid.UUID, _UserState | None] = TtlCache(cache_seconds, MAX_CACHED_USERS)

    # -- management ---------------------------------------------------------

    async def create_own(
        self,
        caller: Caller,
        name: str,
        scopes: Sequence[Scope | None],
        expire_time: datetime | None,
        certificate_identity: str = "",
    ) -> tuple[ApiKey, str]:
        """A new key of the calling user, and its secret."""
        async with self._db.transaction() as db:
            owner = await db.get(User, caller.user_id)
            if owner is None:
                raise Unauthenticated("account no longer exists", reason=Reason.SESSION_REVOKED)
            return await self.create(db, owner, name, scopes, expire_time, certificate_identity)

    async def revoke_own(self, caller: Caller, key_id: str) -> ApiKey:
        return await self.revoke(caller.user_id, only_uuid("api_key_id", key_id))

    async def create(
        self,
        db: AsyncSession,
        owner: User,
        name: str,
        scopes: Sequence[Scope | None],
        expire_time: datetime | None,
        certificate_identity: str = "",
    ) -> tuple[ApiKey, str]:
        """A new key of owner (inside the caller's transaction) and its secret, which is not stored."""
        v = Violations()
        name = v.text("api_key.name", name, max_length=MAX_KEY_NAME_LENGTH, required=True)
        checked = _check_scopes(v, owner, scopes)
        if expire_time is not None and expire_time <= utcnow():
            v.add("api_key.expire_time", "must be in the future")
        identity = await _check_certificate_identity(v, db, owner, certificate_identity)
        v.raise_if_any()
        await _ensure_room_for_a_key(db, owner.id)
        secret = KEY_PREFIX + new_secret()
        key = ApiKey(
            user_id=owner.id,
            key_hash=hash_secret(secret),
            name=name,
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            scopes=sorted(checked, key=lambda scope: scope.value),
            expire_time=expire_time,
            certificate_identity=identity,
        )
        db.add(key)
        try:
            await db.flush()
        except IntegrityError:  # the identity was bound by a concurrent call since the check
            taken = Violations()
            taken.add("api_key.certificate_identity", IDENTITY_TAKEN)
            taken.raise_if_any()
        await db.refresh(key)
        return key, secret

    async def list_keys(self, owner_id: uuid.UUID, page_size: int, page_token: str, *, method: str) -> Page[ApiKey]:
        """The owner's keys, revoked and expired ones included, newest first."""
        v = Violations()
        size = self._paginator.page_size(v, page_size)
        scope = f"{method}:{owner_id}"
        after = self._paginator.decode(v, page_token, scope, 2)
        v.raise_if_any()
        query = newest_first(
            select(ApiKey).where(ApiKey.user_id == owner_id), ApiKey.create_time, ApiKey.id, after, size
        )
        async with self._db.transaction() as db:
            rows = list((await db.execute(query)).scalars())
        return self._paginator.page(rows, size, scope, lambda key: time_id_keyset(key.create_time, key.id))

    async def revoke(self, owner_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
        """Revoke the owner's key (a revoked one stays as it was); another owner's is NOT_FOUND."""
        async with self._db.transaction() as db:
            key = (
                await db.execute(
                    select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == owner_id).with_for_update()
                )
            ).scalar_one_or_none()
            if key is None:
                raise NotFound("no key of this owner has this id", reason=Reason.API_KEY_NOT_FOUND)
            if key.revoke_time is None:
                key.revoke_time = utcnow()
            key_hash = key.key_hash
        self._keys.pop(key_hash)
        self._certificates.pop_where(lambda state: state.key_id == key_id)
        return key

    # -- authentication -----------------------------------------------------

    @staticmethod
    def is_key(token: str) -> bool:
        """Whether a bearer token is an API key rather than an access token."""
        return token.startswith(KEY_PREFIX)

    async def authenticate(self, secret: str, on_behalf_of: str | None, certificate_names: CertificateNames) -> Caller:
        """The caller a key stands for, or the user its service account acts for.

        Refused: unknown, revoked or expired keys, keys of locked-out
        accounts and keys bound to a certificate the connection does not
        have (UNAUTHENTICATED), acting for a user without a service
        account's SCOPE_ACT_AS_USER key or for no ACTIVE user
        (PERMISSION_DENIED), and calls over the key's rate limit.
        """
        key = await self._key(secret)
        if key.certificate_identity is not None and key.certificate_identity not in certificate_names():
            raise Unauthenticated(
                "this API key is bound to a client certificate: call over mutual TLS with that certificate",
                reason=Reason.API_KEY_INVALID,
            )
        return await self._caller_of(key, on_behalf_of)

    async def authenticate_certificate(self, names: Sequence[str], on_behalf_of: str | None) -> Caller | None:
        """The caller of the key bound to one of a client certificate's names
        (the first that has one); None when none is bound. Refused as `authenticate`."""
        key = await self._certificate_key(tuple(names))
        return None if key is None else await self._caller_of(key, on_behalf_of)

    async def _caller_of(self, key: _KeyState, on_behalf_of: str | None) -> Caller:
        now = utcnow()
        if key.revoke_time is not None:
            raise Unauthenticated("API key revoked", reason=Reason.API_KEY_REVOKED)
        if key.expire_time is not None and key.expire_time <= now:
            raise Unauthenticated("API key expired", reason=Reason.API_KEY_EXPIRED)
        if key.state in LOCKED_OUT_STATES:
            raise Unauthenticated("the API key's account is disabled", reason=Reason.API_KEY_REVOKED)
        credential = KeyCredential(key.key_id, key.scopes, key.owner_id)
        caller = Caller(key.owner_id, None, key.role, key.state, key.premium, credential)
        if on_behalf_of is not None:
            caller = await self._acting_for(key, credential, on_behalf_of)
        limit = self._calls.limit.limit
        if limit > 0:
            await self._calls.hit(str(key.key_id), f"this API key made over {limit} calls a minute")
        return caller

    async def _key(self, secret: str) -> _KeyState:
        if len(secret) > MAX_SECRET_LENGTH:
            raise Unauthenticated("API key invalid", reason=Reason.API_KEY_INVALID)
        key_hash = hash_secret(secret)
        return await self._keys.get(key_hash, lambda: self._load_known_key(key_hash))

    async def _load_known_key(self, key_hash: bytes) -> _KeyState:
        """The key with this hash. An unknown hash is an error, which the cache
        does not keep: made-up keys must not fill memory."""
        found = await self._load_key(ApiKey.key_hash == key_hash)
        if found is None:
            raise Unauthenticated("API key invalid", reason=Reason.API_KEY_INVALID)
        return found

    async def _certificate_key(self, names: tuple[str, ...]) -> _KeyState | None:
        try:
            return await self._certificates.get(names, lambda: self._load_bound_key(names))
        except _NoKeyBound:
            return None

    async def _load_bound_key(self, names: tuple[str, ...]) -> _KeyState:
        for name in names:
            found = await self._load_key(and_(ApiKey.certificate_identity == name, ApiKey.revoke_time.is_(None)))
            if found is not None:
                return found
        # An error, so not cached: only certificates the client CA signed get here.
        raise _NoKeyBound

    async def _load_key(self, which: ColumnElement[bool]) -> _KeyState | None:
        """Look a key up with its owner, stamping last_use_time if it is usable."""
        now = utcnow()
        usable = and_(
            ApiKey.revoke_time.is_(None),
            or_(ApiKey.expire_time.is_(None), ApiKey.expire_time > now),
        )
        async with self._db.transaction() as db:
            row = (
                await db.execute(
                    update(ApiKey)
                    .where(which, ApiKey.user_id == User.id)
                    .values(last_use_time=case((usable, now), else_=ApiKey.last_use_time))
                    .returning(
                        ApiKey.id,
                        ApiKey.user_id,
                        ApiKey.scopes,
                        ApiKey.expire_time,
                        ApiKey.revoke_time,
                        ApiKey.certificate_identity,
                        User.kind,
                        User.role,
                        User.state,
                        User.premium,
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return _KeyState(
            row.id,
            row.user_id,
            row.kind,
            row.role,
            row.state,
            row.premium,
            frozenset(row.scopes),
            row.expire_time,
            row.revoke_time,
            row.certificate_identity,
        )

    async def _acting_for(self, key: _KeyState, credential: KeyCredential, on_behalf_of: str) -> Caller:
        if key.owner_kind is not UserKind.SERVICE_ACCOUNT or Scope.ACT_AS_USER not in key.scopes:
            raise PermissionDenied(
                "only a service account's key with SCOPE_ACT_AS_USER may act on behalf of a user",
                reason=Reason.ON_BEHALF_OF_NOT_ALLOWED,
            )
        try:
            user_id = uuid.UUID(on_behalf_of)
        except ValueError:
            user_id = None
        user = await self._user(user_id) if user_id is not None else None
        if user_id is None or user is None or user.kind is not UserKind.USER or user.state is not UserState.ACTIVE:
            raise PermissionDenied(
                f"x-parley-on-behalf-of {on_behalf_of[:40]!r} names no active user",
                reason=Reason.ON_BEHALF_OF_USER_INVALID,
            )
        return Caller(user_id, None, user.role, user.state, user.premium, credential)

    async def _user(self, user_id: uuid.UUID) -> _UserState | None:
        return await self._users.get(user_id, lambda: self._load_user(user_id))

    async def _load_user(self, user_id: uuid.UUID) -> _UserState | None:
        async with self._db.transaction() as db:
            row = (
                await db.execute(select(User.kind, User.role, User.state, User.premium).where(User.id == user_id))
            ).one_or_none()
        return _UserState(row.kind, row.role, row.state, row.premium) if row is not None else None

    def clear_cache(self) -> None:
        self._keys.clear()
        self._certificates.clear()
        self._users.clear()

    async def aclose(self) -> None:
        await self._calls.aclose()


async def _check_certificate_identity(v: Violations, db: AsyncSession, owner: User, identity: str) -> str | None:
    """The certificate identity of a new key: None, or a name no unrevoked key has, for a service account."""
    field = "api_key.certificate_identity"
    identity = v.text(field, identity, max_length=MAX_CERTIFICATE_IDENTITY_LENGTH)
    if not identity:
        return None
    if owner.kind is not UserKind.SERVICE_ACCOUNT:
        v.add(field, "is only for keys of service accounts")
        return None
    taken = await db.scalar(
        select(ApiKey.id).where(ApiKey.certificate_identity == identity, ApiKey.revoke_time.is_(None))
    )
    if taken is not None:
        v.add(field, IDENTITY_TAKEN)
    return identity


def _check_scopes(v: Violations, owner: User, scopes: Sequence[Scope | None]) -> set[Scope]:
    """The key's scopes: at least one, each known and allowed to this owner."""
    checked: set[Scope] = set()
    if not scopes:
        v.add("api_key.scopes", "must name at least one scope")
    for index, scope in enumerate(scopes):
        field = f"api_key.scopes[{index}]"
        if scope is None:
            v.add(field, "is not a scope (SCOPE_READ, SCOPE_WRITE, SCOPE_CHAT, SCOPE_ADMIN, SCOPE_ACT_AS_USER)")
        elif scope is Scope.ADMIN and owner.role is not Role.ADMIN:
            v.add(field, "SCOPE_ADMIN is only for keys of administrators")
        elif scope is Scope.ACT_AS_USER and owner.kind is not UserKind.SERVICE_ACCOUNT:
            v.add(field, "SCOPE_ACT_AS_USER is only for keys of service accounts")
        else:
            checked.add(scope)
    return checked


async def _ensure_room_for_a_key(db: AsyncSession, owner_id: uuid.UUID) -> None:
    """Refuse a key beyond MAX_USABLE_KEYS_PER_OWNER. The owner's row is locked
    first, so two concurrent creates cannot both take the last place."""
    await db.execute(select(User.id).where(User.id == owner_id).with_for_update())
    usable = await db.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.user_id == owner_id,
            ApiKey.revoke_time.is_(None),
            or_(ApiKey.expire_time.is_(None), ApiKey.expire_time > func.now()),
        )
    )
    if (usable or 0) >= MAX_USABLE_KEYS_PER_OWNER:
        raise FailedPrecondition(
            f"this owner already has {MAX_USABLE_KEYS_PER_OWNER} usable API keys; revoke one before creating another",
            reason=Reason.API_KEY_LIMIT,
            metadata={"limit": str(MAX_USABLE_KEYS_PER_OWNER)},
        )
