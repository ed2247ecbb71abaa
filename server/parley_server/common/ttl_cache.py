"""One cache for values that may be a little stale: sessions, API keys, statistics.

Each value is kept for `ttl` seconds, and at most `max_entries` are kept (the
oldest stored is evicted first), so keys chosen by callers (a user id in a
header, say) cannot grow memory without bound.

A hit is a dictionary lookup and a clock read: no task, no suspension, which
matters on the per-RPC authentication path. Concurrent misses of one key share
one load: a client opening a thousand streams at once would otherwise send a
thousand identical reads, each holding a pool connection the streams' own work
waits for. The shared load is shielded, so one caller going away does not
cancel the others' load; a load that fails is not cached, and each waiting
caller sees its error. Forgetting a key also disowns a load of it under way:
that load may have read the state from before the change that made the caller
forget, so its callers get its value but the cache does not keep it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of key, or the value load() gives, then cached."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load_and_store(key, load))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._disown(key, done))
        return await asyncio.shield(loading)

    async def _load_and_store(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        value = await load()
        if self._loading.get(key) is not asyncio.current_task():
            return value  # forgotten while it loaded
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return value

    def _disown(self, key: K, load: asyncio.Future[V]) -> None:
        if self._loading.get(key) is load:
            del self._loading[key]

    def pop(self, key: K) -> None:
        """Forget key's value, so the next get loads it afresh."""
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def pop_where(self, stale: Callable[[V], bool]) -> None:
        """Forget every value for which stale(value) is true, and every load under
        way (whose value is not known yet)."""
        for key in [key for key, (_, value) in self._entries.items() if stale(value)]:
            del self._entries[key]
        self._loading.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
