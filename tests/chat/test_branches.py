"""RegenerateMessage and EditMessage over real gRPC and PostgreSQL: answers and questions as branches of a tree."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import select, update

from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley.conversation.v1 import conversation_pb2 as pb
from parley_server.db.models import Agent, Conversation, UsageDaily
from parley_server.transport.server import RunningServer
from tests.helpers.accounts import Account
from tests.helpers.agents import create_model_agent
from tests.helpers.chat import (
    EXPECTED,
    WORDS,
    arrived,
    collect,
    exchange,
    hold_first_batches,
    kinds,
    read_rest,
    send,
    text_of,
)
from tests.helpers.conversations import new_conversation
from tests.helpers.database import lock_waiters, snapshot
from tests.helpers.errors import expect_error, expect_invalid_naming
from tests.helpers.fake_openai import FakeOpenAI
from tests.helpers.stubs import Stubs

NOT_FOUND = grpc.StatusCode.NOT_FOUND


def regenerate(stubs: Stubs, account: Account, message_id: str, request_id: str = "") -> Any:
    request = chat_pb2.RegenerateMessageRequest(message_id=message_id, request_id=request_id)
    return stubs.chat.RegenerateMessage(request, metadata=account.md)


def edit(stubs: Stubs, account: Account, message_id: str, content: str, request_id: str = "") -> Any:
    request = chat_pb2.EditMessageRequest(message_id=message_id, content=content, request_id=request_id)
    return stubs.chat.EditMessage(request, metadata=account.md)


async def listed(stubs: Stubs, account: Account, cid: str, *, all_branches: bool = False) -> list[pb.Message]:
    response = await stubs.conversation.ListMessages(
        pb.ListMessagesRequest(conversation_id=cid, all_branches=all_branches), metadata=account.md
    )
    return list(response.messages)


async def model_context(stubs: Stubs, account: Account, cid: str) -> list[str]:
    response = await stubs.conversation.GetMessagesForAgent(
        pb.GetMessagesForAgentRequest(conversation_id=cid), metadata=account.md
    )
    return [m.content for m in response.messages]


async def test_regenerate_streams_a_new_sibling_answer(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "hello there")
    events = await collect(regenerate(stubs, alice, first.assistant_message_id))
    assert kinds(events)[0] == "accepted" and kinds(events)[-2:] == ["usage", "completed"]
    accepted, answer = events[0].accepted, events[-1].completed.message
    assert accepted.user_message.id == first.user_message.id  # the question answered again
    assert answer.id == accepted.assistant_message_id != first.assistant_message_id
    assert text_of(events) == answer.content == "Echo: hello there"
    assert answer.parent_id == first.user_message.id
    # The conversation shows the new answer, second of two; the first is still stored.
    path = await listed(stubs, alice, cid)
    assert [(m.id, m.sibling_count, m.sibling_index) for m in path] == [
        (first.user_message.id, 1, 0),
        (answer.id, 2, 1),
    ]
    everything = await listed(stubs, alice, cid, all_branches=True)
    assert [m.id for m in everything] == [first.user_message.id, first.assistant_message_id, answer.id]
    assert [(m.sibling_count, m.sibling_index) for m in everything] == [(1, 0), (2, 0), (2, 1)]
    conversation = await stubs.conversation.GetConversation(
        pb.GetConversationRequest(conversation_id=cid), metadata=alice.md
    )
    assert conversation.conversation.active_message_id == answer.id
    assert conversation.conversation.message_count == 3
    # The next message follows the new answer.
    after = await exchange(stubs, alice, cid, "and then?")
    assert after.user_message.parent_id == answer.id


async def test_a_regenerated_answer_resumes_cancels_and_is_watched(
    stubs: Stubs, alice: Account, server: RunningServer
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, WORDS)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as other:
        other_chat = chat_pb2_grpc.ChatServiceStub(other)
        watch = other_chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=alice.md)
        assert (await watch.read()).conversation_updated.id == cid
        # Disconnect after a few deltas, then resume the rest from another connection.
        call = regenerate(stubs, alice, first.assistant_message_id)
        seen = [await call.read(), await call.read(), await call.read()]
        call.cancel()
        answer_id = seen[0].accepted.assistant_message_id
        offset = len(text_of(seen))
        rest = await collect(
            other_chat.ResumeStream(
                chat_pb2.ResumeStreamRequest(message_id=answer_id, offset=offset), metadata=alice.md
            )
        )
        assert kinds(rest)[-1] == "completed"
        assert text_of(seen) + "".join(e.delta.text for e in rest if e.WhichOneof("event") == "delta") == EXPECTED
        # The watcher saw the new answer arrive, with its parent, and finish.
        watched: list[Any] = []
        async with asyncio.timeout(10):
            while not watched or kinds(watched)[-1] != "message_completed":
                watched.append(await watch.read())
        watch.cancel()
        created = [e.message_created for e in watched if e.WhichOneof("event") == "message_created"]
        assert [(m.id, m.parent_id) for m in created] == [(answer_id, first.user_message.id)]
        assert watched[-1].message_completed.id == answer_id
        # Another regeneration, stopped with the stop button.
        call = regenerate(stubs, alice, first.assistant_message_id)
        seen = [await call.read(), await call.read(), await call.read()]
        cancelled = await other_chat.CancelGeneration(
            chat_pb2.CancelGenerationRequest(message_id=seen[0].accepted.assistant_message_id), metadata=alice.md
        )
    assert cancelled.message.state == pb.MESSAGE_STATE_CANCELLED
    rest = await read_rest(call)
    assert kinds(rest)[-1] == "cancelled" and text_of(seen + rest) == cancelled.message.content
    assert [m.sibling_count for m in await listed(stubs, alice, cid)] == [1, 3]


async def test_regenerating_an_answer_still_streaming_is_failed_precondition(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    call = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=WORDS), metadata=alice.md)
    accepted = (await call.read()).accepted
    await expect_error(
        collect(regenerate(stubs, alice, accepted.assistant_message_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "MESSAGE_STREAMING",
    )
    await read_rest(call)
    assert [m.id for m in await listed(stubs, alice, cid, all_branches=True)] == [
        accepted.user_message.id,
        accepted.assistant_message_id,
    ]


async def test_edit_stores_a_sibling_question_and_answers_it(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "first question")
    second = await exchange(stubs, alice, cid, "second question")
    events = await collect(edit(stubs, alice, second.user_message.id, "better question"))
    assert kinds(events)[0] == "accepted" and kinds(events)[-1] == "completed"
    accepted = events[0].accepted
    assert accepted.user_message.content == "better question"
    assert accepted.user_message.id != second.user_message.id
    assert accepted.user_message.parent_id == first.assistant_message_id  # the edited message's sibling
    assert text_of(events) == "Echo: better question"
    path = await listed(stubs, alice, cid)
    assert [(m.content, m.sibling_count, m.sibling_index) for m in path] == [
        ("first question", 1, 0),
        ("Echo: first question", 1, 0),
        ("better question", 2, 1),
        ("Echo: better question", 1, 0),
    ]
    assert await model_context(stubs, alice, cid) == [m.content for m in path]
    # Editing the first message starts a new root.
    events = await collect(edit(stubs, alice, first.user_message.id, "start over"))
    assert events[0].accepted.user_message.parent_id == ""
    assert [(m.content, m.sibling_count, m.sibling_index) for m in await listed(stubs, alice, cid)] == [
        ("start over", 2, 1),
        ("Echo: start over", 1, 0),
    ]
    assert len(await listed(stubs, alice, cid, all_branches=True)) == 8


async def test_the_model_gets_the_system_prompt_and_the_path_to_the_question(stubs: Stubs, alice: Account) -> None:
    """A first question (and an edit of it) is sent as it was just stored, without
    reading it back; a later question with the messages on the path up to it."""
    async with FakeOpenAI(words=["Sure."]) as fake:
        await create_model_agent(stubs, fake.base_url)
        cid = (await new_conversation(stubs, alice, slug="remote")).id
        first = await exchange(stubs, alice, cid, "first question")
        await exchange(stubs, alice, cid, "second question")
        await collect(edit(stubs, alice, first.user_message.id, "first, again"))
    system = {"role": "system", "content": "Be brief."}
    answer = {"role": "assistant", "content": "Sure."}
    assert [request.body["messages"] for request in fake.requests] == [
        [system, {"role": "user", "content": "first question"}],
        [system, {"role": "user", "content": "first question"}, answer, {"role": "user", "content": "second question"}],
        [system, {"role": "user", "content": "first, again"}],
    ]


async def test_switching_branch_changes_the_listed_path_and_the_model_context(
    stubs: Stubs, alice: Account, server: RunningServer
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "one")
    second = await exchange(stubs, alice, cid, "two")
    await collect(edit(stubs, alice, first.user_message.id, "uno"))
    assert await model_context(stubs, alice, cid) == ["uno", "Echo: uno"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as other:
        watch = chat_pb2_grpc.ChatServiceStub(other).WatchConversation(
            chat_pb2.WatchConversationRequest(conversation_id=cid), metadata=alice.md
        )
        await watch.read()
        # Back to the first branch: its newest leaf (the answer to "two") becomes active.
        switched = await stubs.conversation.SwitchBranch(
            pb.SwitchBranchRequest(message_id=first.user_message.id), metadata=alice.md
        )
        assert switched.conversation.active_message_id == second.assistant_message_id
        async with asyncio.timeout(10):
            update_event = await watch.read()
        watch.cancel()
    assert update_event.conversation_updated.active_message_id == second.assistant_message_id
    assert [m.content for m in await listed(stubs, alice, cid)] == ["one", "Echo: one", "two", "Echo: two"]
    assert await model_context(stubs, alice, cid) == ["one", "Echo: one", "two", "Echo: two"]
    # The next message continues that branch; and the model sees that branch only.
    third = await exchange(stubs, alice, cid, "three")
    assert third.user_message.parent_id == second.assistant_message_id
    assert await model_context(stubs, alice, cid) == ["one", "Echo: one", "two", "Echo: two", "three", "Echo: three"]
    # Switching to a message in the middle of a path picks its newest descendant.
    back = await stubs.conversation.SwitchBranch(
        pb.SwitchBranchRequest(message_id=second.user_message.id), metadata=alice.md
    )
    assert back.conversation.active_message_id == third.assistant_message_id


async def test_generate_title_titles_the_first_question_of_the_shown_branch(stubs: Stubs, alice: Account) -> None:
    async with stubs.app.database.transaction() as db:  # the heuristic, so the title is the question's words
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(title_generation=False))
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "Pasta recipes for tonight")
    await collect(edit(stubs, alice, first.user_message.id, "Tax forms due in April"))

    async def title() -> str:
        response: pb.GenerateTitleResponse = await stubs.conversation.GenerateTitle(
            pb.GenerateTitleRequest(conversation_id=cid), metadata=alice.md
        )
        return response.conversation.title

    assert await title() == "Tax forms due in April"
    await stubs.conversation.SwitchBranch(pb.SwitchBranchRequest(message_id=first.user_message.id), metadata=alice.md)
    assert await title() == "Pasta recipes for tonight"


async def test_regenerations_count_against_the_quota(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(daily_message_quota=3))
    first = await exchange(stubs, alice, cid, "hi")
    await collect(regenerate(stubs, alice, first.assistant_message_id))
    await collect(edit(stubs, alice, first.user_message.id, "hello"))
    assert await stubs.app.chat.generations.idle(timeout=10)
    before = await snapshot(stubs.app)
    await expect_error(
        collect(regenerate(stubs, alice, first.assistant_message_id)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "QUOTA_EXCEEDED",
    )
    await expect_error(
        collect(edit(stubs, alice, first.user_message.id, "hey")), grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED"
    )
    assert await snapshot(stubs.app) == before
    async with stubs.app.database.transaction() as db:
        counted = await db.scalar(
            select(UsageDaily.message_count).where(UsageDaily.user_id == uuid.UUID(alice.user.id))
        )
    assert counted == 3


async def test_usage_counts_regenerations_without_a_quota(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "hi")
    await collect(regenerate(stubs, alice, first.assistant_message_id))
    assert await stubs.app.chat.generations.idle(timeout=10)
    async with stubs.app.database.transaction() as db:
        counted = await db.scalar(
            select(UsageDaily.message_count).where(UsageDaily.user_id == uuid.UUID(alice.user.id))
        )
    assert counted == 2


async def test_a_retried_regeneration_reattaches(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, WORDS)
    request_id = str(uuid.uuid4())
    call = regenerate(stubs, alice, first.assistant_message_id, request_id)
    accepted = (await call.read()).accepted
    call.cancel()
    retry = await collect(regenerate(stubs, alice, first.assistant_message_id, request_id))
    assert retry[0].accepted == accepted
    assert text_of(retry) == EXPECTED
    assert len(await listed(stubs, alice, cid, all_branches=True)) == 3
    # An edit retried likewise stores one new question.
    edit_id = str(uuid.uuid4())
    edited = await collect(edit(stubs, alice, first.user_message.id, "again", edit_id))
    again = await collect(edit(stubs, alice, first.user_message.id, "again", edit_id))
    assert again[0].accepted == edited[0].accepted
    assert len(await listed(stubs, alice, cid, all_branches=True)) == 5


async def test_concurrent_regenerations_are_siblings_in_the_order_they_started(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "hi")
    async with stubs.app.database.transaction() as holder:
        await holder.execute(select(Conversation).where(Conversation.id == uuid.UUID(cid)).with_for_update())
        calls = [
            asyncio.create_task(collect(regenerate(stubs, alice, first.assistant_message_id, str(uuid.uuid4()))))
            for _ in range(2)
        ]
        async with asyncio.timeout(10):
            while await lock_waiters(stubs.app) < 2:
                await asyncio.sleep(0.02)
    results = await asyncio.gather(*calls)
    answers = {events[0].accepted.assistant_message_id for events in results}
    assert len(answers) == 2 and all(kinds(events)[-1] == "completed" for events in results)
    siblings = [m for m in await listed(stubs, alice, cid, all_branches=True) if m.parent_id == first.user_message.id]
    assert [m.id for m in siblings][0] == first.assistant_message_id
    assert {m.id for m in siblings[1:]} == answers
    assert [(m.sibling_count, m.sibling_index) for m in siblings] == [(3, 0), (3, 1), (3, 2)]
    # The one that started last (the newest sibling) is the active answer.
    assert (await listed(stubs, alice, cid))[-1].id == siblings[-1].id


async def test_other_users_messages_are_not_found(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "mine")
    mallory = await stubs.active_account("mallory@example.com")
    assert await stubs.app.chat.generations.idle(timeout=10)
    before = await snapshot(stubs.app)
    await expect_error(collect(edit(stubs, mallory, first.user_message.id, "hijacked")), NOT_FOUND, "MESSAGE_NOT_FOUND")
    await expect_error(collect(regenerate(stubs, mallory, first.assistant_message_id)), NOT_FOUND, "MESSAGE_NOT_FOUND")
    await expect_error(
        stubs.conversation.SwitchBranch(pb.SwitchBranchRequest(message_id=first.user_message.id), metadata=mallory.md),
        NOT_FOUND,
        "MESSAGE_NOT_FOUND",
    )
    await expect_error(collect(regenerate(stubs, alice, str(uuid.uuid4()))), NOT_FOUND, "MESSAGE_NOT_FOUND")
    assert await snapshot(stubs.app) == before


async def test_bad_input_is_refused_and_changes_nothing(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await exchange(stubs, alice, cid, "hi")
    assert await stubs.app.chat.generations.idle(timeout=10)
    before = await snapshot(stubs.app)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await expect_error(collect(regenerate(stubs, alice, first.user_message.id)), invalid, "NOT_A_GENERATION")
    await expect_error(collect(edit(stubs, alice, first.assistant_message_id, "x")), invalid, "NOT_A_USER_MESSAGE")
    await expect_invalid_naming(
        stubs.app, collect(regenerate(stubs, alice, "not-a-uuid", "r" * 101)), "message_id", "request_id"
    )
    await expect_invalid_naming(stubs.app, collect(edit(stubs, alice, first.user_message.id, "x" * 100_001)), "content")
    await expect_invalid_naming(stubs.app, collect(edit(stubs, alice, first.user_message.id, "  ")), "content")
    await expect_invalid_naming(
        stubs.app,
        stubs.conversation.SwitchBranch(pb.SwitchBranchRequest(message_id="42"), metadata=alice.md),
        "message_id",
    )
    assert await snapshot(stubs.app) == before


async def test_starts_that_share_a_write_each_get_their_own_outcome(
    stubs: Stubs, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starts arriving together write their exchanges in one statement; each
    must still land where it asked and hear back its own: sends after
    earlier answers (one with a request id a retry finds again), a
    regeneration beside an answer, an edit beside a later question, and
    another user's send, counted against their quota."""
    quota = 10
    new_cid, followed_cid, regenerated_cid, edited_cid = [(await new_conversation(stubs, alice)).id for _ in range(4)]
    earlier = await exchange(stubs, alice, new_cid, "before")
    followed = await exchange(stubs, alice, followed_cid, "the start")
    regenerated = await exchange(stubs, alice, regenerated_cid, "answer me again")
    await exchange(stubs, alice, edited_cid, "a question")
    edited = await exchange(stubs, alice, edited_cid, "say it otherwise")
    bob = await stubs.active_account("bob@example.com")
    bobs_cid = (await new_conversation(stubs, bob)).id
    bobs_earlier = await exchange(stubs, bob, bobs_cid, "my first one")
    assert await stubs.app.chat.generations.idle(timeout=10)  # usage written
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.slug == "assistant").values(daily_message_quota=quota))
        await db.execute(
            update(UsageDaily).where(UsageDaily.user_id == uuid.UUID(bob.user.id)).values(message_count=quota - 1)
        )
    writes = stubs.app.chat._writes
    batches = hold_first_batches(writes, 5, monkeypatch)

    alices = [
        asyncio.ensure_future(start)
        for start in (
            send(stubs, alice, new_cid, "a new start", "once"),
            send(stubs, alice, followed_cid, "and then?"),
            collect(regenerate(stubs, alice, regenerated.assistant_message_id)),
            collect(edit(stubs, alice, edited.user_message.id, "said otherwise")),
        )
    ]
    # Alice's starts share her usage row (the quota), so no two share a batch:
    # bob's is sent once hers are in, to find one of them still pending. Had
    # it arrived among the first, held batches, every later one would run alone.
    await arrived(writes, batches, len(alices))
    outcomes = await asyncio.gather(
        *alices, send(stubs, bob, bobs_cid, "my last one")
    )  # any of them failing fails the test with its error
    assert max(batches) > 1, "the starts must have shared a write"
    new, then, again, rewritten, last = outcomes
    # What each heard back is its own: its question, where it went, its answer.
    heard = [
        (e[0].accepted.user_message.content, e[0].accepted.user_message.parent_id) for e in (new, then, rewritten, last)
    ]
    assert heard == [
        ("a new start", earlier.assistant_message_id),
        ("and then?", followed.assistant_message_id),
        ("said otherwise", edited.user_message.parent_id),
        ("my last one", bobs_earlier.assistant_message_id),
    ]
    assert again[0].accepted.user_message == regenerated.user_message
    assert [text_of(e) for e in (new, then, again, rewritten)] == [
        "Echo: a new start",
        "Echo: and then?",
        "Echo: answer me again",
        "Echo: said otherwise",
    ]
    # What was stored is each one's.
    assert [m.content for m in await listed(stubs, alice, new_cid)][2:] == ["a new start", "Echo: a new start"]
    assert [m.content for m in await listed(stubs, alice, followed_cid)] == [
        "the start",
        "Echo: the start",
        "and then?",
        "Echo: and then?",
    ]
    assert [(m.id, m.sibling_count) for m in await listed(stubs, alice, regenerated_cid)] == [
        (regenerated.user_message.id, 1),
        (again[0].accepted.assistant_message_id, 2),
    ]
    assert [(m.content, m.sibling_count) for m in await listed(stubs, alice, edited_cid)][2:] == [
        ("said otherwise", 2),
        ("Echo: said otherwise", 1),
    ]
    assert (await send(stubs, alice, new_cid, "a new start", "once"))[0].accepted == new[0].accepted
    assert text_of(last) == "Echo: my last one"
    assert await stubs.app.chat.generations.idle(timeout=10)
    async with stubs.app.database.transaction() as db:
        used = await db.scalar(select(UsageDaily.message_count).where(UsageDaily.user_id == uuid.UUID(bob.user.id)))
    assert used == quota
