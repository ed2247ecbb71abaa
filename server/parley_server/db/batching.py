"""Concurrent writes of one kind, gathered into one statement (group commit).

Each statement that writes commits on its own, and a commit waits for
PostgreSQL to flush its write-ahead log: under load, a write's round trip is
mostly that wait, and each round trip also costs this process the work of
sending, waking and decoding. `Batcher` runs at most `max_in_flight` batches
at a time; whatever is submitted while they run waits for the next batch,
so a burst goes as a few multi-row statements (one flush each) and a lone
call goes at once, as a batch of one.

With `stall_after`, a batch starts beside a running one only once that one
has run so long (a lock wait, say), so under load the batches are as big as
the statement's pace makes them instead of split across every free slot.
A statement has a fixed cost that dwarfs a row's: CreateMessage's cost
PostgreSQL 340-1,080 us of CPU for a message alone, 75-100 us a message in
a batch of 22; with four batches started as soon as anything waited, most
went alone (see conversations/service.py).

Two items with a key in common never share a batch (the later one waits
for the next): a batch's statement can then treat its rows as independent,
as CreateMessage does with one message per conversation. If a batch's
statement fails, each of its items is run again alone, so an item's error
is its own and never fails its neighbours. The price: a batch commits when
its slowest row is written, so an item may wait a little for another
key's lock (CreateMessage: another conversation's, held by a short write).

A caller that goes away (a cancelled RPC) before its batch starts takes its
item with it; once the batch runs, the item is written or not with the
rest, as a statement already sent would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs submitted items through `run`, many to a call; `run` answers one result per item, in order."""

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        keys: Callable[[Item], Collection[Hashable]],
        max_batch: int,
        max_in_flight: int,
        stall_after: float = 0.0,
    ) -> None:
        """stall_after: seconds a batch runs before another may start beside it (0: at once, while a slot is free)."""
        self._run = run
        self._keys = keys
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._stall_after = stall_after
        self._stalled = 0  # runners whose batch has run stall_after or longer
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runners: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        """The item's result, once a batch holding it has run; its error if it fails alone."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._wants_runner():
            self._start_runner()
        return await future

    def _wants_runner(self) -> bool:
        """Whether what is pending should start a runner now: while a slot is
        free, and with stall_after only when every runner is stalled (so none
        is about to take it)."""
        if len(self._runners) >= self._max_in_flight:
            return False
        return not self._stall_after or len(self._runners) == self._stalled

    def _start_runner(self) -> None:
        self._runners.add(asyncio.create_task(self._drain(), name="batcher"))

    async def _drain(self) -> None:
        """Run batches until nothing is pending (a task's first batch waits one
        turn of the event loop, taking whatever else was submitted meanwhile).

        The task leaves `_runners` in the same step that finds nothing
        pending: a done-callback would run a turn later, and an item
        submitted in between would find every runner slot taken by tasks
        that no longer look.
        """
        runner = asyncio.current_task()
        try:
            while batch := self._take():
                if self._stall_after:
                    await self._settle_watched(batch)
                else:
                    await self._settle(batch)
        finally:
            if runner is not None:
                self._runners.discard(runner)

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """The next batch: pending items in order, none sharing a key with an
        earlier one, at most max_batch; items whose caller went away are dropped."""
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        left: list[tuple[Item, asyncio.Future[Result]]] = []
        for entry in self._pending:
            item, future = entry
            if future.done():
                continue
            its_keys = self._keys(item)
            if len(batch) == self._max_batch or not keys.isdisjoint(its_keys):
                left.append(entry)
            else:
                keys.update(its_keys)
                batch.append(entry)
        self._pending = left
        return batch

    async def _settle_watched(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        """_settle, counted as stalled once it has run stall_after: then what waits, or comes, starts beside it."""
        stalled = False

        def stall() -> None:
            nonlocal stalled
            stalled = True
            self._stalled += 1
            if self._pending and self._wants_runner():
                self._start_runner()

        timer = asyncio.get_running_loop().call_later(self._stall_after, stall)
        try:
            await self._settle(batch)
        finally:
            timer.cancel()
            if stalled:
                self._stalled -= 1

    async def _settle(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as error:
            if len(batch) > 1:  # each alone, so that only the item at fault fails
                await asyncio.gather(*(self._settle([entry]) for entry in batch))
            elif not batch[0][1].done():  # done: its caller went away
                batch[0][1].set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
