"""What was made of rows read before, kept under their (id, row version) pairs:
a read then asks PostgreSQL only for the pairs.

PostgreSQL writes every change of a row as a new row version whose `xmin`
system column is the id of the transaction that wrote it: any UPDATE,
whatever its columns, gives the row a new xmin, and a row lock (FOR UPDATE)
does not. So a value made of rows read together with their xmins stays
right for as long as a statement finds those same (id, xmin) pairs, in the
same order. A statement that answers only the pairs (no other column,
nothing to decode or compute per row; ListConversations asks for them as
one text) then tells whether the value is kept; where it is not, the caller
reads the rows whole and keeps what it made of them. Each process keeps its
own; since a pair names one row version in the database, every replica's
are equally right.

xmin counts transactions modulo 2^32, so a row's pair could repeat only
after about four billion transactions; everything kept is dropped at least
every MAX_AGE_SECONDS, far sooner than PostgreSQL can run that many.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
MAX_AGE_SECONDS = 600.0


class VersionedRows(Generic[V]):
    """At most `limit` values, each under a key naming its rows' versions; dropped
    oldest kept first, and all of them every MAX_AGE_SECONDS."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: OrderedDict[Hashable, V] = OrderedDict()
        self._since = time.monotonic()

    def get(self, key: Hashable) -> V | None:
        """The value kept under key, or None."""
        if time.monotonic() - self._since > MAX_AGE_SECONDS:
            self._kept.clear()
            self._since = time.monotonic()
            return None
        return self._kept.get(key)

    def keep(self, key: Hashable, value: V) -> None:
        """Keep value under key (made of rows read with their xmins), dropping the oldest beyond the limit."""
        kept = self._kept
        kept[key] = value
        while len(kept) > self._limit:
            kept.popitem(last=False)
