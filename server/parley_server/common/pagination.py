"""AIP-158 pagination shared by every List RPC: page sizes and keyset page tokens.

A page token carries the sort key of the last row served, so the next page
starts strictly after it and stays stable while rows are inserted. Tokens are
signed (HMAC-SHA256) and bound to the query that made them (method, caller,
filters): a tampered token, or one replayed against another query or by
another user, is INVALID_ARGUMENT rather than a window into other data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from parley_server.common.validation import Violations

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PAGE_TOKEN_LENGTH = 1024

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Page(Generic[T]):
    """One page of a List RPC. Compared and hashed by identity: a domain may
    keep a page and answer with it again, and a handler may keep what it
    made of it for as long (conversations/convert.py)."""

    items: list[T]
    next_page_token: str


class Paginator:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"parley-page-token", hashlib.sha256).digest()

    @staticmethod
    def page_size(v: Violations, value: int, field: str = "page_size") -> int:
        """0 means the default; larger than the maximum is capped; negative is an error."""
        if value < 0:
            v.add(field, "must not be negative")
            return DEFAULT_PAGE_SIZE
        return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, scope: str, keyset: Sequence[str]) -> str:
        """A token resuming after the row whose sort key is keyset, valid only for scope."""
        body = json.dumps({"s": scope, "k": list(keyset)}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(self._sign(body) + body).decode().rstrip("=")

    def decode(self, v: Violations, token: str, scope: str, arity: int, field: str = "page_token") -> list[str] | None:
        """The keyset in token (None for the first page); a violation when it is not ours."""
        if not token:
            return None
        try:
            if len(token) > MAX_PAGE_TOKEN_LENGTH:
                raise ValueError
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            signature, body = raw[:16], raw[16:]
            if not hmac.compare_digest(signature, self._sign(body)):
                raise ValueError
            payload = json.loads(body)
            keyset = payload["k"]
            if payload["s"] != scope or len(keyset) != arity or not all(isinstance(k, str) for k in keyset):
                raise ValueError
            return list(keyset)
        except (ValueError, KeyError, TypeError, binascii.Error):
            v.add(field, "is not a page token of this query; start again with an empty page_token")
            return None

    def page(self, rows: list[T], size: int, scope: str, keyset_of: Callable[[T], Sequence[str]]) -> Page[T]:
        """Cut rows (fetched with limit size + 1) into a page and the token for the next one."""
        if len(rows) <= size:
            return Page(rows, "")
        items = rows[:size]
        return Page(items, self.encode(scope, keyset_of(items[-1])))


def newest_first(
    query: Select[Any],
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    keyset: list[str] | None,
    size: int,
) -> Select[Any]:
    """Order by (time, id) descending, start strictly after keyset, fetch size + 1 rows.

    The id breaks ties between equal times, so the order is total and a row
    can be neither repeated nor skipped between pages.
    """
    if keyset is not None:
        query = query.where(tuple_(time_column, id_column) < time_id_after(keyset))
    return query.order_by(time_column.desc(), id_column.desc()).limit(size + 1)


def time_id_after(keyset: list[str]) -> tuple[datetime, uuid.UUID]:
    """The (time, id) a newest_first page starts strictly after (for SQL written by hand too)."""
    return datetime.fromisoformat(keyset[0]), uuid.UUID(keyset[1])


def time_id_keyset(time: datetime, row_id: uuid.UUID) -> tuple[str, str]:
    """The keyset of a row in a newest_first listing."""
    return (time.isoformat(), str(row_id))
