"""Access tokens (JWT) and opaque secrets (refresh, email and invite tokens).

Access tokens are HS256 JWTs with the algorithm pinned on decode (so `alg:
none` and algorithm confusion are refused), and `iss`, `aud`, `exp`, `sub`
and `sid` required. Opaque tokens are random and stored only as SHA-256
hashes, so a database leak does not hand out live credentials.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from parley_server.common.errors import Reason, Unauthenticated

ALGORITHM = "HS256"
# Verified tokens remembered per process: more than the callers one process
# serves within an access token's lifetime, and a few MB at most.
VERIFIED_CACHE_SIZE = 4096


def new_secret() -> str:
    """A URL-safe random token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def hash_secret(token: str) -> bytes:
    """The stored form of an opaque token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says about its bearer."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    expire_time: datetime


class AccessTokens:
    """Issue and check access tokens."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl: timedelta) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.ttl = ttl
        # token -> (its exp as a Unix time, its claims); least recently used first.
        self._verified: OrderedDict[str, tuple[int, AccessClaims]] = OrderedDict()

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime) -> tuple[str, datetime]:
        """A signed token for this session; returns it with its expiry."""
        expire = now + self.ttl
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": int(now.timestamp()),
            "exp": int(expire.timestamp()),
            "jti": new_secret()[:16],
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expire

    def decode(self, token: str) -> AccessClaims:
        """Verify signature and claims; any failure is UNAUTHENTICATED.

        A client sends the same token with every call until it expires, and
        verifying it (HMAC, JSON, claim checks, UUID parsing) was 4-6% of a
        GetConversation's CPU (scripts/bench_unary.py --profile: PyJWT alone
        165 of 3,789 us per request; none once remembered). So a token that
        verified is remembered (LRU, VERIFIED_CACHE_SIZE) until its `exp`:
        every other check PyJWT made, once passed, stays passed (the
        signature; `iat` not in the future). An expired token is verified
        afresh, so it is refused exactly as before. Only verified tokens are
        kept, so invalid ones cannot push callers out of the cache. Whether
        the session is still live is not cached here (SessionService does).
        """
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            self._verified.move_to_end(token)
            return cached[1]
        self._verified.pop(token, None)
        claims = self._verify(token)
        self._verified[token] = (int(claims.expire_time.timestamp()), claims)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]},
            )
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                expire_time=datetime.fromtimestamp(claims["exp"]).astimezone(),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("access token expired", reason=Reason.TOKEN_EXPIRED) from exc
        except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError) as exc:
            raise Unauthenticated("access token invalid", reason=Reason.TOKEN_INVALID) from exc
