"""Rows read before, kept by (id, row version), so a read can ask PostgreSQL only which rows it holds.

PostgreSQL writes every change of a row as a new row version whose `xmin`
system column is the id of the transaction that wrote it: any UPDATE,
whatever its columns, gives the row a new xmin, and a row lock (FOR UPDATE)
does not. So a row kept under (id, xmin) is the row as it still is for as
long as a statement finds that same pair. A statement that reads only the
pairs (no other column, nothing to decode or compute per row) then tells
whether every row it names is kept; where one is not, the caller reads the
rows whole and keeps them. Each process keeps its own; since a pair names
one row version in the database, every replica's are equally right.

xmin counts transactions modulo 2^32, so a row's pair could repeat only
after about four billion transactions; everything kept is dropped at least
every MAX_AGE_SECONDS, far sooner than PostgreSQL can run that many.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

R = TypeVar("R")
# A row's id and its xmin.
Key = tuple[uuid.UUID, int]
MAX_AGE_SECONDS = 600.0


class VersionedRows(Generic[R]):
    """At most `limit` rows, dropped oldest kept first, and all of them every MAX_AGE_SECONDS."""

    def __init__(self, limit: int, key: Callable[[R], Key]) -> None:
        self._limit = limit
        self._key = key
        self._rows: OrderedDict[Key, R] = OrderedDict()
        self._since = time.monotonic()

    def all(self, keys: Sequence[Key]) -> list[R] | None:
        """The rows kept under keys, in their order; None unless every one is kept."""
        if time.monotonic() - self._since > MAX_AGE_SECONDS:
            self._rows.clear()
            self._since = time.monotonic()
            return None
        rows = self._rows
        found = []
        for key in keys:
            row = rows.get(key)
            if row is None:
                return None
            found.append(row)
        return found

    def keep(self, rows: Iterable[R]) -> None:
        """Keep rows (read with their xmin), dropping the oldest kept beyond the limit."""
        kept = self._rows
        for row in rows:
            kept[self._key(row)] = row
        while len(kept) > self._limit:
            kept.popitem(last=False)
