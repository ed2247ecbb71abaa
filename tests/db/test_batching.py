"""Batcher, the group commit behind CreateMessage: what its callers rely on.

The statement is stood in for by a function that records the batches it
gets; CreateMessage's real statement under a burst is tested over gRPC
(tests/conversations/test_conversations.py).
"""

from __future__ import annotations

import asyncio

import pytest

from parley_server.db.batching import Batcher


class Statement:
    """Records each batch; holds it until released when `gate` is set; fails a batch holding `poison`."""

    def __init__(self, poison: str = "") -> None:
        self.batches: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.gate: asyncio.Event | None = None
        self._poison = poison

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(items)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0.01)
            if self._poison in items:
                raise ValueError(f"{self._poison} is bad")
            return [item.upper() for item in items]
        finally:
            self.running -= 1


def alone(item: str) -> tuple[str]:
    return (item,)


def by_first_letter(item: str) -> tuple[str]:
    return (item[0],)


async def test_a_lone_item_goes_at_once_and_a_burst_goes_in_few_batches() -> None:
    statement = Statement()
    batcher = Batcher(statement, keys=alone, max_batch=64, max_in_flight=2)
    assert await batcher.submit("alone") == "ALONE"
    items = [f"item {n}" for n in range(40)]
    assert await asyncio.gather(*(batcher.submit(item) for item in items)) == [item.upper() for item in items]
    assert statement.batches[0] == ["alone"]
    assert len(statement.batches) <= 3  # the burst: 2 batches in flight, then what came meanwhile
    assert sorted(item for batch in statement.batches[1:] for item in batch) == sorted(items)
    assert statement.most_running <= 2


async def test_items_with_one_key_never_share_a_batch() -> None:
    statement = Statement()
    batcher = Batcher(statement, keys=by_first_letter, max_batch=64, max_in_flight=1)
    items = ["a1", "b1", "a2", "c1", "a3", "b2"]
    assert await asyncio.gather(*(batcher.submit(item) for item in items)) == [item.upper() for item in items]
    for batch in statement.batches:
        assert len({item[0] for item in batch}) == len(batch)
    # The same key's items run in the order they came.
    ran = [item for batch in statement.batches for item in batch]
    assert [item for item in ran if item[0] == "a"] == ["a1", "a2", "a3"]


async def test_items_sharing_any_of_their_keys_never_share_a_batch() -> None:
    statement = Statement()
    batcher = Batcher(statement, keys=lambda item: item.split(), max_batch=64, max_in_flight=1)
    items = ["a x", "b y", "c x", "d", "a z", "e y"]
    assert await asyncio.gather(*(batcher.submit(item) for item in items)) == [item.upper() for item in items]
    assert statement.batches == [["a x", "b y", "d"], ["c x", "a z", "e y"]]


async def test_batches_hold_at_most_max_batch_items() -> None:
    statement = Statement()
    batcher = Batcher(statement, keys=alone, max_batch=5, max_in_flight=1)
    await asyncio.gather(*(batcher.submit(str(n)) for n in range(23)))
    assert max(len(batch) for batch in statement.batches) == 5
    assert sum(len(batch) for batch in statement.batches) == 23


async def test_a_failing_batch_fails_only_the_item_at_fault() -> None:
    statement = Statement(poison="bad")
    batcher = Batcher(statement, keys=alone, max_batch=64, max_in_flight=1)
    first = asyncio.create_task(batcher.submit("first"))
    await asyncio.sleep(0)  # "first" runs alone; the rest gather behind it
    results = await asyncio.gather(*(batcher.submit(item) for item in ("good", "bad", "fine")), return_exceptions=True)
    assert await first == "FIRST"
    assert results[0] == "GOOD" and results[2] == "FINE"
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad is bad"
    assert ["good", "bad", "fine"] in statement.batches  # tried together first, then each alone
    assert ["bad"] in statement.batches and ["good"] in statement.batches


async def test_an_item_whose_caller_left_before_its_batch_is_not_run() -> None:
    statement = Statement()
    statement.gate = asyncio.Event()
    batcher = Batcher(statement, keys=alone, max_batch=64, max_in_flight=1)
    running = asyncio.create_task(batcher.submit("running"))
    await asyncio.sleep(0.01)  # its batch is in flight, held by the gate
    gone = asyncio.create_task(batcher.submit("gone"))
    stays = asyncio.create_task(batcher.submit("stays"))
    await asyncio.sleep(0)
    gone.cancel()
    statement.gate.set()
    assert (await running, await stays) == ("RUNNING", "STAYS")
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert statement.batches == [["running"], ["stays"]]


async def test_an_item_submitted_as_the_last_runner_finishes_still_runs() -> None:
    """A runner that found nothing pending gives its slot back in the same
    step, so an item submitted right after is not left waiting for good."""
    later: list[asyncio.Task[str]] = []

    async def statement(items: list[str]) -> list[str]:
        if items == ["first"]:
            # Its first step runs after the runner has found nothing more to
            # do and ended, but before anything scheduled by that ending.
            later.append(asyncio.create_task(batcher.submit("second")))
        return [item.upper() for item in items]

    batcher = Batcher(statement, keys=alone, max_batch=64, max_in_flight=1)
    assert await batcher.submit("first") == "FIRST"
    assert await asyncio.wait_for(later[0], timeout=5) == "SECOND"


async def test_with_stall_after_a_burst_waits_for_the_running_batch_instead_of_splitting() -> None:
    """Under load the batches stay big: nothing starts beside a batch that runs at a statement's pace."""
    statement = Statement()
    statement.gate = asyncio.Event()
    batcher = Batcher(statement, keys=alone, max_batch=64, max_in_flight=4, stall_after=5)
    first = asyncio.create_task(batcher.submit("first"))
    await asyncio.sleep(0.01)  # its batch runs, held by the gate
    items = [f"item {n}" for n in range(40)]
    burst = asyncio.gather(*(batcher.submit(item) for item in items))
    await asyncio.sleep(0.05)
    statement.gate.set()
    assert await burst == [item.upper() for item in items]
    assert await first == "FIRST"
    assert statement.batches == [["first"], items]
    assert statement.most_running == 1


async def test_with_stall_after_a_batch_that_stalls_lets_the_next_start_beside_it() -> None:
    """One batch stuck (a lock wait) holds the others back only stall_after,
    whether they came before it stalled or after, up to max_in_flight at once."""
    statement = Statement()
    statement.gate = asyncio.Event()
    batcher = Batcher(statement, keys=alone, max_batch=64, max_in_flight=3, stall_after=0.3)
    stuck = asyncio.create_task(batcher.submit("stuck"))
    await asyncio.sleep(0.01)
    early = asyncio.create_task(batcher.submit("early"))
    await asyncio.sleep(0.01)
    assert statement.batches == [["stuck"]]  # before stall_after, it waits
    await asyncio.sleep(0.8)
    assert statement.batches == [["stuck"], ["early"]]  # then it runs beside; by now that one stalls too
    late = asyncio.create_task(batcher.submit("late"))
    await asyncio.sleep(0.05)
    assert statement.batches == [["stuck"], ["early"], ["late"]]  # every runner stalled: it starts at once
    last = asyncio.create_task(batcher.submit("last"))
    await asyncio.sleep(0.5)
    assert len(statement.batches) == 3  # all three slots held: it waits
    statement.gate.set()
    assert list(await asyncio.wait_for(asyncio.gather(stuck, early, late, last), timeout=5)) == [
        "STUCK",
        "EARLY",
        "LATE",
        "LAST",
    ]
    assert statement.most_running == 3
