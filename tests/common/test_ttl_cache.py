"""The cache behind sessions, API keys and statistics: shared loads, expiry,
eviction, and forgetting that wins over a load under way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from parley_server.common.ttl_cache import TtlCache


class Loads:
    """A load that counts its calls and can be held until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        return self.calls


async def test_concurrent_misses_share_one_load_and_failures_are_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=60, max_entries=2)
    load = Loads()
    load.release.clear()
    waiting = asyncio.gather(cache.get("a", load), cache.get("a", load))
    await asyncio.sleep(0)
    load.release.set()
    assert list(await waiting) == [1, 1]
    assert load.calls == 1
    assert await cache.get("a", load) == 1  # a hit

    async def fail() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await cache.get("b", fail)
    assert await cache.get("b", load) == 2  # the failure was not kept


async def test_the_oldest_entry_is_evicted_beyond_the_bound() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=60, max_entries=2)
    load = Loads()
    for key in ("a", "b", "c"):
        await cache.get(key, load)
    assert await cache.get("b", load) == 2 and await cache.get("c", load) == 3
    assert await cache.get("a", load) == 4  # evicted, loaded again


async def test_values_expire() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=0, max_entries=10)
    load = Loads()
    assert await cache.get("a", load) == 1
    assert await cache.get("a", load) == 2


async def test_a_caller_going_away_does_not_cancel_the_shared_load() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=60, max_entries=10)
    load = Loads()
    load.release.clear()
    leaving = asyncio.ensure_future(cache.get("a", load))
    staying = asyncio.ensure_future(cache.get("a", load))
    await asyncio.sleep(0)
    leaving.cancel()
    load.release.set()
    assert await staying == 1
    assert load.calls == 1


async def test_forgetting_during_a_load_keeps_its_value_out_of_the_cache() -> None:
    """A revocation committed while a session was being read: the read may have
    seen the session live, so its value must not be served from the cache."""
    forgets: tuple[Callable[[TtlCache[str, int]], None], ...] = (
        lambda cache: cache.pop("a"),
        lambda cache: cache.pop_where(lambda value: True),
        lambda cache: cache.clear(),
    )
    for forget in forgets:
        cache: TtlCache[str, int] = TtlCache(ttl=60, max_entries=10)
        load = Loads()
        load.release.clear()
        under_way = asyncio.ensure_future(cache.get("a", load))
        await asyncio.sleep(0)
        forget(cache)
        load.release.set()
        assert await under_way == 1  # its own callers get the value
        assert await cache.get("a", load) == 2  # but it was not kept


async def test_pop_where_forgets_only_matching_values() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=60, max_entries=10)

    def load(value: int) -> Callable[[], Awaitable[int]]:
        return lambda: asyncio.sleep(0, value)

    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        await cache.get(key, load(value))
    cache.pop_where(lambda value: value % 2 == 1)
    assert [await cache.get(key, lambda: asyncio.sleep(0, 0)) for key in "abc"] == [0, 2, 0]
