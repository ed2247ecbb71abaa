"""Reading ChatService streams: their events, the text they carry, the message they leave stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable
from typing import Any, TypeVar

import grpc
import pytest

from parley.chat.v1 import chat_pb2
from parley_server.chat.service import START_BATCHES_IN_FLIGHT
from parley_server.db.batching import Batcher
from parley_server.db.models import Message
from tests.helpers.accounts import Account
from tests.helpers.stubs import Stubs

# A question whose echoed answer streams long enough to act on mid-answer.
WORDS = " ".join(f"word{i}" for i in range(60))
EXPECTED = "Echo: " + WORDS


T = TypeVar("T")


async def collect(stream: AsyncIterable[T]) -> list[T]:
    return [event async for event in stream]


async def read_rest(call: Any) -> list[Any]:
    """The remaining messages of a stream read with call.read()."""
    rest = []
    while (event := await call.read()) is not grpc.aio.EOF:
        rest.append(event)
    return rest


def text_of(events: list[Any]) -> str:
    """Concatenate deltas, checking that offsets are contiguous (no gap, no duplicate)."""
    text = ""
    for event in events:
        if event.WhichOneof("event") == "delta":
            assert event.delta.offset == len(text), (event.delta.offset, len(text))
            text += event.delta.text
    return text


def kinds(events: list[Any]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


async def stored(stubs: Stubs, message_id: str) -> Message:
    """The message as PostgreSQL holds it."""
    async with stubs.app.database.transaction() as db:
        message = await db.get(Message, uuid.UUID(message_id))
        assert message is not None
        return message


async def send(
    stubs: Stubs, account: Account, conversation_id: str, content: str, request_id: str = ""
) -> list[chat_pb2.SendMessageResponse]:
    """A whole SendMessage's events, read to the end (its error raised as the call's)."""
    request = chat_pb2.SendMessageRequest(conversation_id=conversation_id, content=content, request_id=request_id)
    return await collect(stubs.chat.SendMessage(request, metadata=account.md))


async def exchange(stubs: Stubs, account: Account, conversation_id: str, content: str) -> chat_pb2.GenerationAccepted:
    """A whole SendMessage, answered in full; its accepted event (the user message and the answer's id)."""
    events = await send(stubs, account, conversation_id, content)
    assert kinds(events)[-1] == "completed", kinds(events)
    accepted: chat_pb2.GenerationAccepted = events[0].accepted
    return accepted


def hold_first_batches(batcher: Batcher[Any, Any], items: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make a start batcher hold its first batches until `items` items have
    arrived, so that the rest certainly share one batch; the sizes of the
    batches it runs from then on are appended to the list returned.

    Calls arriving together reach the server some time apart, and a batch
    takes what arrived while the last ran: left to the timing, a test's
    starts may each run alone.
    """
    batches: list[int] = []
    run = batcher._run

    async def held(batch: list[Any]) -> list[Any]:
        batches.append(len(batch))
        if len(batches) <= START_BATCHES_IN_FLIGHT:
            await arrived(batcher, batches, items)
        return await run(batch)

    monkeypatch.setattr(batcher, "_run", held)
    return batches


async def arrived(batcher: Batcher[Any, Any], batches: list[int], items: int) -> None:
    """Wait until `items` items have reached a batcher held by hold_first_batches
    (`batches` is what it returned): taken into a batch, or pending."""
    async with asyncio.timeout(10):
        while sum(batches) + len(batcher._pending) < items:
            await asyncio.sleep(0.01)
