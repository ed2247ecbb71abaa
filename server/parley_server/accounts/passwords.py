"""Argon2id password hashing, kept off the event loop.

Hashing costs tens of milliseconds of CPU by design; running it on the loop
would stall every other RPC of the process, so it goes to a worker thread.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    """Hash and verify passwords with Argon2id (argon2-cffi's RFC 9106 defaults)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the account does not exist, so a wrong email
        # costs as much time as a wrong password (no account enumeration).
        self._dummy_hash = self._hasher.hash("parley-dummy-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when password matches; with no hash (or an empty one: service
        accounts), spends the same time and says no."""
        target = password_hash or self._dummy_hash
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and bool(password_hash)
