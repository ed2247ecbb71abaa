"""ChatService end to end over real gRPC: streaming, resume, cancel, watch, retries."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import func, select, update

from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley.conversation.v1 import conversation_pb2
from parley_server.chat import service as chat_service
from parley_server.chat.watch import ConversationWatch
from parley_server.db.models import Agent, Conversation, Message, MessageState, UsageDaily
from parley_server.events.bus import Subscription
from parley_server.settings import Settings
from parley_server.transport.server import RunningServer
from tests.helpers.accounts import Account
from tests.helpers.chat import EXPECTED, WORDS, collect, hold_first_batches, kinds, read_rest, send, stored, text_of
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.database import lock_waiters, snapshot
from tests.helpers.errors import expect_error
from tests.helpers.in_process import second_server
from tests.helpers.stubs import Stubs


async def stored_conversation(stubs: Stubs, conversation_id: str) -> Conversation:
    async with stubs.app.database.transaction() as db:
        conversation = await db.get(Conversation, uuid.UUID(conversation_id))
        assert conversation is not None
        return conversation


async def wait_for_state(stubs: Stubs, message_id: str, state: MessageState, timeout: float = 10) -> Message:
    async with asyncio.timeout(timeout):
        while (message := await stored(stubs, message_id)).state is not state:
            await asyncio.sleep(0.05)
    return message


async def test_send_streams_accepted_deltas_usage_completed(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    )
    assert kinds(events)[0] == "accepted" and kinds(events)[-2:] == ["usage", "completed"]
    assert kinds(events).count("delta") > 10, "the answer must arrive incrementally"
    assert text_of(events) == EXPECTED
    accepted, completed = events[0].accepted, events[-1].completed.message
    assert accepted.user_message.content == WORDS
    assert completed.id == accepted.assistant_message_id
    assert completed.content == EXPECTED and completed.state == conversation_pb2.MESSAGE_STATE_COMPLETE
    assert events[-2].usage.usage.completion_tokens == 61
    message = await stored(stubs, completed.id)
    assert message.content == EXPECTED and message.state is MessageState.COMPLETE


async def test_a_stream_sends_at_most_one_delta_per_frame(
    stubs: Stubs, alice: Account, tmp_path: Path, database_url: str
) -> None:
    """61 words 10 ms apart on a replica with the default frame of 100 ms (the
    suite's own sends each word alone): a few deltas of several words each,
    never more than one per frame, the text exact."""
    frame_ms = Settings.model_fields["stream_frame_ms"].default
    assert frame_ms == 100
    cid = (await new_conversation(stubs, alice)).id
    async with second_server(tmp_path, database_url, stream_frame_ms=frame_ms) as framed:
        started = time.monotonic()
        events = await collect(
            framed.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
        )
        elapsed = time.monotonic() - started
    deltas = [event.delta.text for event in events if event.WhichOneof("event") == "delta"]
    assert 3 <= len(deltas) <= elapsed / (frame_ms / 1000) + 1, (len(deltas), elapsed)
    assert max(len(text.split()) for text in deltas) > 2
    assert text_of(events) == EXPECTED


async def test_a_frame_that_ends_late_stretches_the_next_one(
    stubs: Stubs, alice: Account, tmp_path: Path, database_url: str
) -> None:
    """400 words 10 ms apart on a replica with the default frame; after the
    second delta the event loop is blocked for a second, as on a saturated
    server. The follower's frame sleep ends that much late, so its next
    frame is as much longer (up to 10 frames): one delta then carries the
    words of the blocked second and of that long frame, where with frames
    of the set length it would carry the blocked second's and one frame's.
    Later frames, slept on time, are the set length again."""
    blocked = 1.0
    content = " ".join(f"w{i}" for i in range(400))
    cid = (await new_conversation(stubs, alice)).id
    words: list[int] = []
    events = []
    frame_ms = Settings.model_fields["stream_frame_ms"].default
    async with second_server(tmp_path, database_url, stream_frame_ms=frame_ms) as framed:
        frame, delay = frame_ms / 1000, framed.app.settings.echo_delay_ms / 1000
        stream = framed.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=cid, content=content), metadata=alice.md
        )
        async for event in stream:
            events.append(event)
            if event.WhichOneof("event") == "delta":
                words.append(len(event.delta.text.split()))
                if len(words) == 2:
                    time.sleep(blocked)  # noqa: ASYNC251 - the server shares this loop: it is blocked too
    assert text_of(events) == "Echo: " + content
    assert max(words) >= 1.5 * blocked / delay, words  # unstretched: about blocked / delay + 10
    assert min(words[5:-1]) <= 2 * frame / delay, words


async def test_first_exchange_titles_conversation_and_records_usage(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    await collect(
        stubs.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=cid, content="How do tides work?"), metadata=alice.md
        )
    )
    async with asyncio.timeout(10):
        while True:
            got = await stubs.conversation.GetConversation(
                conversation_pb2.GetConversationRequest(conversation_id=cid), metadata=alice.md
            )
            if got.conversation.title:
                break
            await asyncio.sleep(0.05)
    assert got.conversation.message_count == 2
    # The seeded assistant has title generation: its (echo) answer, cleaned, is the title.
    assert got.conversation.title == "Echo: How do tides work"
    async with stubs.app.database.transaction() as db:
        usage = (await db.execute(select(UsageDaily))).scalars().all()
    assert [(u.message_count, u.completion_tokens > 0) for u in usage] == [(1, True)]


async def test_only_the_first_exchange_titles_a_conversation(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    await stubs.conversation.CreateMessage(
        conversation_pb2.CreateMessageRequest(
            conversation_id=cid, role=conversation_pb2.MESSAGE_ROLE_USER, content="imported earlier"
        ),
        metadata=alice.md,
    )
    await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="hi"), metadata=alice.md)
    )
    assert await stubs.app.chat.generations.idle(timeout=10)
    got = await stubs.conversation.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=cid), metadata=alice.md
    )
    assert got.conversation.title == ""  # not a first exchange: GenerateTitle is there when wanted


async def test_a_title_set_while_the_first_answer_streams_is_kept(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    events = []
    async for event in call:
        events.append(event)
        if kinds(events).count("delta") == 3:
            await stubs.conversation.UpdateConversation(
                conversation_pb2.UpdateConversationRequest(
                    conversation=conversation_pb2.Conversation(id=cid, title="Chosen by me"),
                    update_mask=FieldMask(paths=["title"]),
                ),
                metadata=alice.md,
            )
    assert kinds(events)[-1] == "completed"
    assert await stubs.app.chat.generations.idle(timeout=10)  # the automatic title had its chance
    got = await stubs.conversation.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=cid), metadata=alice.md
    )
    assert got.conversation.title == "Chosen by me"


async def test_disconnect_then_resume_from_last_offset_gives_exact_text(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    seen: list[Any] = []
    async for event in call:
        seen.append(event)
        if kinds(seen).count("delta") == 5:
            break
    call.cancel()  # the client goes away; the generation must not
    message_id = seen[0].accepted.assistant_message_id
    partial = text_of(seen)
    rest = await collect(
        stubs.chat.ResumeStream(
            chat_pb2.ResumeStreamRequest(message_id=message_id, offset=len(partial)), metadata=alice.md
        )
    )
    assert rest[0].delta.offset == len(partial)
    assert partial + "".join(e.delta.text for e in rest if e.WhichOneof("event") == "delta") == EXPECTED
    assert kinds(rest)[-1] == "completed"


async def test_generation_survives_the_client_leaving(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    first = await call.read()
    call.cancel()
    message = await wait_for_state(stubs, first.accepted.assistant_message_id, MessageState.COMPLETE)
    assert message.content == EXPECTED


async def test_resume_a_finished_message_replays_it(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    )
    mid = events[0].accepted.assistant_message_id
    replay = await collect(stubs.chat.ResumeStream(chat_pb2.ResumeStreamRequest(message_id=mid), metadata=alice.md))
    assert text_of(replay) == EXPECTED and kinds(replay)[-1] == "completed"
    tail = await collect(
        stubs.chat.ResumeStream(chat_pb2.ResumeStreamRequest(message_id=mid, offset=len(EXPECTED)), metadata=alice.md)
    )
    assert kinds(tail) == ["usage", "completed"]
    details = await expect_error(
        collect(
            stubs.chat.ResumeStream(
                chat_pb2.ResumeStreamRequest(message_id=mid, offset=len(EXPECTED) + 1), metadata=alice.md
            )
        ),
        grpc.StatusCode.OUT_OF_RANGE,
        "OFFSET_OUT_OF_RANGE",
    )
    assert details.metadata == {"length": str(len(EXPECTED))}


async def test_resume_beyond_the_text_of_a_streaming_message_is_out_of_range(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    seen = [await call.read(), await call.read()]
    mid = seen[0].accepted.assistant_message_id
    details = await expect_error(
        collect(
            stubs.chat.ResumeStream(
                chat_pb2.ResumeStreamRequest(message_id=mid, offset=len(EXPECTED)), metadata=alice.md
            )
        ),
        grpc.StatusCode.OUT_OF_RANGE,
        "OFFSET_OUT_OF_RANGE",
    )
    assert int(details.metadata["length"]) < len(EXPECTED)
    assert (await stored(stubs, mid)).state is MessageState.STREAMING, "refused while the answer still streams"
    seen += await read_rest(call)
    assert text_of(seen) == EXPECTED


async def test_resume_of_a_user_message_is_invalid_argument(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    )
    details = await expect_error(
        collect(
            stubs.chat.ResumeStream(
                chat_pb2.ResumeStreamRequest(message_id=events[0].accepted.user_message.id), metadata=alice.md
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "NOT_A_GENERATION",
    )
    assert "message_id" in details.violations


async def test_cancel_from_another_connection_keeps_partial_text(
    stubs: Stubs, alice: Account, server: RunningServer
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    seen = [await call.read(), await call.read(), await call.read()]
    message_id = seen[0].accepted.assistant_message_id
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as other:
        cancelled = await chat_pb2_grpc.ChatServiceStub(other).CancelGeneration(
            chat_pb2.CancelGenerationRequest(message_id=message_id), metadata=alice.md
        )
    assert cancelled.message.state == conversation_pb2.MESSAGE_STATE_CANCELLED
    assert EXPECTED.startswith(cancelled.message.content) and 0 < len(cancelled.message.content) < len(EXPECTED)
    rest = await read_rest(call)
    assert kinds(rest)[-1] == "cancelled"
    assert text_of(seen + rest) == cancelled.message.content
    # Cancelling again is harmless and changes nothing.
    again = await stubs.chat.CancelGeneration(
        chat_pb2.CancelGenerationRequest(message_id=message_id), metadata=alice.md
    )
    assert again.message.content == cancelled.message.content


async def test_watch_sees_messages_deltas_completion_and_title(
    stubs: Stubs, alice: Account, server: RunningServer
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as other:
        watch = chat_pb2_grpc.ChatServiceStub(other).WatchConversation(
            chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=alice.md
        )
        initial = await watch.read()  # the current state: from now on nothing is missed
        assert initial.conversation_updated.id == cid
        await collect(
            stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
        )
        seen: list[Any] = []
        async with asyncio.timeout(10):
            while (event := await watch.read()) is not grpc.aio.EOF:
                seen.append(event)
                if event.WhichOneof("event") == "conversation_updated" and event.conversation_updated.title:
                    break
        watch.cancel()
    assert kinds(seen)[:2] == ["message_created", "message_created"]
    deltas = "".join(e.delta.text for e in seen if e.WhichOneof("event") == "delta")
    assert deltas == EXPECTED
    completed = [e.message_completed for e in seen if e.WhichOneof("event") == "message_completed"]
    assert completed[0].content == EXPECTED


async def watch_and_its_subscription(
    stubs: Stubs, account: Account, cid: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Subscription]:
    """A started watch and the event-bus subscription feeding it, so a test can make it lose events."""
    subscriptions: list[Subscription] = []
    subscribe = stubs.app.bus.subscribe

    @contextlib.asynccontextmanager
    async def recording(conversation_id: uuid.UUID, **options: Any) -> AsyncIterator[Subscription]:
        async with subscribe(conversation_id, **options) as subscription:
            subscriptions.append(subscription)
            yield subscription

    with monkeypatch.context() as patch:
        patch.setattr(stubs.app.bus, "subscribe", recording)
        request = chat_pb2.WatchConversationRequest(conversation_id=cid)
        watch = stubs.chat.WatchConversation(request, metadata=account.md)
        first = await watch.read()
    assert first.conversation_updated.id == cid and len(subscriptions) == 1
    return watch, subscriptions[0]


async def read_until(watch: Any, kind: str) -> list[Any]:
    """Watch events up to and including the first of kind."""
    events: list[Any] = []
    async with asyncio.timeout(15):
        while not events or kinds(events)[-1] != kind:
            events.append(await watch.read())
    return events


async def test_watch_replays_an_exchange_whose_events_were_lost(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    watch, subscription = await watch_and_its_subscription(stubs, alice, cid, monkeypatch)
    with monkeypatch.context() as deaf:
        deaf.setattr(subscription, "deliver", lambda event: None)
        sent = await collect(
            stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
        )
        async with asyncio.timeout(10):  # the title, the exchange's last change, comes after the answer
            while not (await stored_conversation(stubs, cid)).title:
                await asyncio.sleep(0.05)
    subscription.mark_lagged()  # what the bus does when it notices lost events
    events = await read_until(watch, "conversation_updated")
    watch.cancel()
    user, answer = sent[0].accepted.user_message, sent[-1].completed.message
    assert kinds(events) == ["message_created", "message_created", "message_completed", "conversation_updated"]
    assert [events[0].message_created, events[1].message_created.id] == [user, answer.id]
    assert events[2].message_completed == answer
    assert events[3].conversation_updated.message_count == 2 and events[3].conversation_updated.title


async def test_a_watch_learns_of_a_change_whose_event_never_came_after_a_silence(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when another replica could not NOTIFY: nothing tells the watch, so it re-reads after a silence."""
    monkeypatch.setattr(chat_service, "WATCH_RECHECK_SECONDS", 0.4)
    cid = (await new_conversation(stubs, alice)).id
    watch, subscription = await watch_and_its_subscription(stubs, alice, cid, monkeypatch)
    with monkeypatch.context() as deaf:
        deaf.setattr(subscription, "deliver", lambda event: None)
        created = await add_message(stubs, alice, cid, "sent while the bus was away")
    events = await read_until(watch, "conversation_updated")
    watch.cancel()
    assert kinds(events) == ["message_created", "conversation_updated"]
    assert events[0].message_created == created and events[1].conversation_updated.message_count == 1


async def test_a_quiet_watch_re_reads_but_sends_nothing_when_nothing_changed(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_service, "WATCH_RECHECK_SECONDS", 0.2)
    rechecks = 0
    catch_up = ConversationWatch._catch_up

    async def counted(self: ConversationWatch, told: Any) -> Any:
        nonlocal rechecks
        rechecks += 1
        return await catch_up(self, told)

    monkeypatch.setattr(ConversationWatch, "_catch_up", counted)
    cid = (await new_conversation(stubs, alice)).id
    await add_message(stubs, alice, cid, "said before the watch")
    watch = stubs.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=alice.md)
    assert (await watch.read()).conversation_updated.message_count == 1
    next_event = asyncio.ensure_future(watch.read())  # pending for as long as nothing is sent
    await asyncio.sleep(1.5)
    assert not next_event.done() and rechecks >= 3
    # A message the watch was told of is not told again by the re-reads that follow.
    added = await add_message(stubs, alice, cid, "said while watching")
    async with asyncio.timeout(10):
        events = [await next_event, await watch.read()]
    assert kinds(events) == ["message_created", "conversation_updated"] and events[0].message_created == added
    rechecks = 0
    next_event = asyncio.ensure_future(watch.read())
    await asyncio.sleep(1.5)
    assert not next_event.done() and rechecks >= 3
    watch.cancel()


async def test_watch_fills_in_the_text_lost_mid_answer(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    watch, subscription = await watch_and_its_subscription(stubs, alice, cid, monkeypatch)
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    with monkeypatch.context() as deaf:
        deaf.setattr(subscription, "deliver", lambda event: None)
        seen = [await call.read()]
        while kinds(seen).count("delta") < 5:
            seen.append(await call.read())
    subscription.mark_lagged()
    events = await read_until(watch, "message_completed")
    watch.cancel()
    call.cancel()
    assert kinds(events)[:2] == ["message_created", "message_created"]
    answer = events[1].message_created
    assert answer.id == seen[0].accepted.assistant_message_id
    assert "conversation_updated" in kinds(events), "the catch-up ends with the conversation"
    text = answer.content  # the text so far travels in the message, then deltas continue it exactly
    for event in events[2:-1]:
        if event.WhichOneof("event") == "delta":
            assert event.delta.offset == len(text), kinds(events)
            text += event.delta.text
    assert text == EXPECTED == events[-1].message_completed.content


async def test_a_slow_watcher_gets_each_character_once(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events queue up while the answer completes, so the watch reads the messages only after it ended."""
    cid = (await new_conversation(stubs, alice)).id
    watch, subscription = await watch_and_its_subscription(stubs, alice, cid, monkeypatch)
    caught_up = asyncio.Event()
    next_event = subscription.next

    async def slow_next() -> Any:
        await caught_up.wait()
        return await next_event()

    monkeypatch.setattr(subscription, "next", slow_next)
    sent = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    )
    caught_up.set()
    events = await read_until(watch, "message_completed")
    watch.cancel()
    answer_id = sent[0].accepted.assistant_message_id
    text = ""
    for event in events:
        if event.WhichOneof("event") == "message_created" and event.message_created.id == answer_id:
            text = event.message_created.content
        elif event.WhichOneof("event") == "delta":
            assert event.delta.offset == len(text), kinds(events)
            text += event.delta.text
    assert text == EXPECTED


async def test_watch_started_mid_answer_gets_the_text_so_far_first(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    seen = [await call.read()]
    while kinds(seen).count("delta") < 5:
        seen.append(await call.read())
    watch = stubs.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=alice.md)
    events = await read_until(watch, "message_completed")
    watch.cancel()
    call.cancel()
    assert kinds(events)[0] == "conversation_updated"
    assert events[1].delta.offset == 0 and text_of(events) == EXPECTED


async def test_watch_ends_when_conversation_is_deleted(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    watch = stubs.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=alice.md)
    assert (await watch.read()).conversation_updated.id == cid
    await stubs.conversation.DeleteConversation(
        conversation_pb2.DeleteConversationRequest(conversation_id=cid), metadata=alice.md
    )
    async with asyncio.timeout(5):
        events = await read_rest(watch)
    assert kinds(events)[-1] == "conversation_deleted" and events[-1].conversation_deleted == cid


@pytest.mark.parametrize("streaming", [False, True], ids=["idle", "mid-answer"])
async def test_watch_ends_when_the_deletion_event_is_lost(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch, streaming: bool
) -> None:
    """The deletion is learnt from stored state: the watch ends with conversation_deleted, nothing empty before."""
    cid = (await new_conversation(stubs, alice)).id
    watch, subscription = await watch_and_its_subscription(stubs, alice, cid, monkeypatch)
    call = None
    if streaming:  # the watcher follows an answer when the conversation goes
        call = stubs.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md
        )
        assert kinds(await read_until(watch, "delta"))[:2] == ["message_created", "message_created"]
    with monkeypatch.context() as deaf:
        deaf.setattr(subscription, "deliver", lambda event: None)
        await stubs.conversation.DeleteConversation(
            conversation_pb2.DeleteConversationRequest(conversation_id=cid), metadata=alice.md
        )
    subscription.mark_lagged()  # what the bus does when it notices lost events
    async with asyncio.timeout(10):
        events = await read_rest(watch)
    if call is not None:
        call.cancel()
    assert kinds(events)[-1] == "conversation_deleted" and events[-1].conversation_deleted == cid
    assert None not in kinds(events), "every event carries a change"
    assert await watch.code() == grpc.StatusCode.OK


async def test_retry_with_same_request_id_reattaches(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    request = chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS, request_id="req-1")
    first = stubs.chat.SendMessage(request, metadata=alice.md)
    accepted = await first.read()
    first.cancel()
    retry = await collect(stubs.chat.SendMessage(request, metadata=alice.md))
    assert retry[0].accepted.assistant_message_id == accepted.accepted.assistant_message_id
    assert retry[0].accepted.user_message.id == accepted.accepted.user_message.id
    assert text_of(retry) == EXPECTED
    listed = await stubs.conversation.ListMessages(
        conversation_pb2.ListMessagesRequest(conversation_id=cid), metadata=alice.md
    )
    assert len(listed.messages) == 2


async def test_concurrent_sends_with_one_request_id_start_one_exchange(stubs: Stubs, alice: Account) -> None:
    """Both calls read that the request id is unclaimed, then queue on the
    conversation's lock; the second to get it must write nothing (its quota
    count included) and reattach to the first's exchange."""
    cid = (await new_conversation(stubs, alice)).id
    request = chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS, request_id="req-race")
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(daily_message_quota=5))
    async with stubs.app.database.transaction() as holder:
        await holder.execute(select(Conversation).where(Conversation.id == uuid.UUID(cid)).with_for_update())
        sends = [asyncio.create_task(collect(stubs.chat.SendMessage(request, metadata=alice.md))) for _ in range(2)]
        async with asyncio.timeout(10):
            while await lock_waiters(stubs.app) < 2:
                await asyncio.sleep(0.02)
    first, second = await asyncio.gather(*sends)
    assert first[0].accepted == second[0].accepted
    assert text_of(first) == text_of(second) == EXPECTED
    assert await stubs.app.chat.generations.idle(timeout=10)
    async with stubs.app.database.transaction() as db:
        messages = await db.scalar(
            select(func.count()).select_from(Message).where(Message.conversation_id == uuid.UUID(cid))
        )
        counted = await db.scalar(
            select(UsageDaily.message_count).where(UsageDaily.user_id == uuid.UUID(alice.user.id))
        )
    assert (messages, counted) == (2, 1)


async def test_answers_whose_end_waits_for_a_lock_leave_room_for_new_exchanges(stubs: Stubs, alice: Account) -> None:
    """Each answer's end adds to the day's usage row. Twelve ends held up by a
    lock on that row (more than the plain pool's ten connections) must not
    take every connection: a new exchange is still accepted, and once the
    lock goes every answer ends as it should."""
    md = alice.md
    cids = [(await new_conversation(stubs, alice)).id for _ in range(13)]
    await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cids[0], content="hi"), metadata=md)
    )
    usage_row = select(UsageDaily).where(UsageDaily.user_id == uuid.UUID(alice.user.id)).with_for_update()
    async with stubs.app.database.transaction() as holder:
        assert (await holder.execute(usage_row)).scalars().all()
        held = [
            stubs.chat.SendMessage(
                chat_pb2.SendMessageRequest(conversation_id=cid, content="short question"), metadata=md
            )
            for cid in cids[1:]
        ]
        for call in held:  # every answer streamed to its end: its end is being stored
            events: list[Any] = []
            while text_of(events) != "Echo: short question":
                events.append(await call.read())
        async with asyncio.timeout(10):
            while await lock_waiters(stubs.app) < 1:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the other ends reach the pool
        new = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cids[0], content="again"), metadata=md)
        async with asyncio.timeout(5):
            assert (await new.read()).WhichOneof("event") == "accepted"
    assert kinds(await read_rest(new))[-1] == "completed"
    for call in held:
        assert kinds(await read_rest(call)) == ["usage", "completed"]


async def test_provider_failure_ends_failed_with_partial_text(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    events = await collect(
        stubs.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=cid, content="/fail please now"), metadata=alice.md
        )
    )
    assert kinds(events)[-1] == "failed"
    failed = events[-1].failed
    assert failed.reason == "echo provider asked to fail"
    assert failed.message.state == conversation_pb2.MESSAGE_STATE_FAILED
    assert failed.message.content == text_of(events) == "Echo: /fail please "


async def test_quota_exceeded_is_refused_before_anything_is_stored(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(daily_message_quota=1))
    await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="hi"), metadata=alice.md)
    )
    assert await stubs.app.chat.generations.idle(timeout=10)  # usage and title written
    before = await snapshot(stubs.app)
    await expect_error(
        collect(
            stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="again"), metadata=alice.md)
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "QUOTA_EXCEEDED",
    )
    assert await snapshot(stubs.app) == before


async def test_a_start_follows_the_agent_row_as_it_is_now(stubs: Stubs, alice: Account) -> None:
    """Starts share the Agent made from the row they read (chat/sql.py's
    agent_of): a change to the row shows at the next start, even one made
    in SQL that leaves version and update_time as they were."""
    cid = (await new_conversation(stubs, alice)).id
    assert text_of(await send(stubs, alice, cid, "hello")) == "Echo: hello"
    assert await stubs.app.chat.generations.idle(timeout=10)  # usage and title written
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(enabled=False))
    before = await snapshot(stubs.app)
    await expect_error(send(stubs, alice, cid, "again"), grpc.StatusCode.PERMISSION_DENIED, "AGENT_DISABLED")
    assert await snapshot(stubs.app) == before
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(enabled=True))
    assert text_of(await send(stubs, alice, cid, "back")) == "Echo: back"


async def test_concurrent_sends_in_many_conversations_cannot_pass_the_quota_together(
    stubs: Stubs, alice: Account
) -> None:
    cids = [(await new_conversation(stubs, alice)).id for _ in range(8)]
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(daily_message_quota=3))

    async def send(cid: str) -> grpc.StatusCode:
        try:
            await collect(
                stubs.chat.SendMessage(
                    chat_pb2.SendMessageRequest(conversation_id=cid, content="hi"), metadata=alice.md
                )
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(send(cid) for cid in cids))
    assert sorted(code.name for code in codes) == ["OK"] * 3 + ["RESOURCE_EXHAUSTED"] * 5
    assert await stubs.app.chat.generations.idle(timeout=10)
    async with stubs.app.database.transaction() as db:
        usage = await db.scalar(select(UsageDaily.message_count).where(UsageDaily.user_id == uuid.UUID(alice.user.id)))
        stored = await db.scalar(
            select(func.count()).select_from(Message).where(Message.conversation_id.in_([uuid.UUID(c) for c in cids]))
        )
    assert (usage, stored) == (3, 6)  # three exchanges of two messages; the refused ones stored nothing


async def test_other_users_conversations_and_messages_are_not_found(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="secret"), metadata=alice.md)
    )
    mid = events[0].accepted.assistant_message_id
    mallory = await stubs.active_account("mallory@example.com")
    assert await stubs.app.chat.generations.idle(timeout=10)
    before = await snapshot(stubs.app)
    not_found = grpc.StatusCode.NOT_FOUND
    await expect_error(
        collect(
            stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="x"), metadata=mallory.md)
        ),
        not_found,
    )
    await expect_error(
        collect(stubs.chat.ResumeStream(chat_pb2.ResumeStreamRequest(message_id=mid), metadata=mallory.md)), not_found
    )
    await expect_error(
        stubs.chat.CancelGeneration(chat_pb2.CancelGenerationRequest(message_id=mid), metadata=mallory.md), not_found
    )
    await expect_error(
        collect(
            stubs.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=mallory.md)
        ),
        not_found,
    )
    assert await snapshot(stubs.app) == before


async def test_starts_that_share_a_facts_read_each_get_their_own_outcome(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starts arriving together read their facts in one statement; each must
    still get its own: an exchange in its conversation, NOT_FOUND for another
    user's or a missing conversation, and for a retried request id the
    exchange it started."""
    mine = [(await new_conversation(stubs, alice)).id for _ in range(4)]
    mallory = await stubs.active_account("mallory@example.com")
    theirs = (await new_conversation(stubs, mallory)).id
    retried = chat_pb2.SendMessageRequest(conversation_id=mine[0], content="first", request_id="again")
    first = await collect(stubs.chat.SendMessage(retried, metadata=alice.md))
    batches = hold_first_batches(stubs.app.chat._facts, 7, monkeypatch)

    outcomes = await asyncio.gather(
        *(send(stubs, alice, cid, f"hello {cid}") for cid in mine[1:]),
        send(stubs, alice, theirs, "not mine"),
        send(stubs, alice, str(uuid.uuid4()), "nowhere"),
        collect(stubs.chat.SendMessage(retried, metadata=alice.md)),
        send(stubs, mallory, theirs, "mine"),
        return_exceptions=True,
    )
    assert max(batches) > 1, "the starts must have shared a read"
    for cid, events in zip(mine[1:], outcomes[:3], strict=True):
        assert not isinstance(events, BaseException)
        accepted = events[0].accepted.user_message
        assert (accepted.conversation_id, accepted.content) == (cid, f"hello {cid}")
        assert text_of(events) == f"Echo: hello {cid}"
    for refused in outcomes[3:5]:
        assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() == grpc.StatusCode.NOT_FOUND
    replayed, theirs_answered = outcomes[5:]
    assert not isinstance(replayed, BaseException) and not isinstance(theirs_answered, BaseException)
    assert replayed[0].accepted == first[0].accepted
    assert theirs_answered[0].accepted.user_message.conversation_id == theirs
    assert text_of(theirs_answered) == "Echo: mine"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"conversation_id": "", "content": "hi"}, "conversation_id"),
        ({"conversation_id": "not-a-uuid", "content": "hi"}, "conversation_id"),
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "x" * 100_001}, "content"),
        ({"content": "hi", "request_id": "r" * 101}, "request_id"),
    ],
)
async def test_send_rejects_bad_input_and_changes_nothing(
    stubs: Stubs, alice: Account, request_fields: dict[str, str], field: str
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    before = await snapshot(stubs.app)
    details = await expect_error(
        collect(
            stubs.chat.SendMessage(
                chat_pb2.SendMessageRequest(**{"conversation_id": cid, **request_fields}), metadata=alice.md
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in details.violations
    assert await snapshot(stubs.app) == before


async def test_resume_and_cancel_reject_bad_ids(stubs: Stubs, alice: Account) -> None:
    await expect_error(
        collect(stubs.chat.ResumeStream(chat_pb2.ResumeStreamRequest(message_id="nope"), metadata=alice.md)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        collect(
            stubs.chat.ResumeStream(
                chat_pb2.ResumeStreamRequest(message_id=str(uuid.uuid4()), offset=-1), metadata=alice.md
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        stubs.chat.CancelGeneration(chat_pb2.CancelGenerationRequest(message_id=""), metadata=alice.md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_chat_needs_a_token(stubs: Stubs) -> None:
    await expect_error(
        collect(stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=str(uuid.uuid4()), content="x"))),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_conversation_counts_stay_right(stubs: Stubs, alice: Account) -> None:
    """Concurrent sends to one conversation: every message counted, and each
    answer answers its own message, never one sent after it."""
    cid = (await new_conversation(stubs, alice)).id
    answers = await asyncio.gather(
        *(
            collect(
                stubs.chat.SendMessage(
                    chat_pb2.SendMessageRequest(conversation_id=cid, content=f"m{i}"), metadata=alice.md
                )
            )
            for i in range(8)
        )
    )
    assert [text_of(events) for events in answers] == [f"Echo: m{i}" for i in range(8)]
    async with stubs.app.database.transaction() as db:
        conversation = await db.get(Conversation, uuid.UUID(cid))
        assert conversation is not None and conversation.message_count == 16
