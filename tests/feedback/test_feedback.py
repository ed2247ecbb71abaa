"""FeedbackService over real gRPC: rating answers, changing and deleting ratings,
the owner-only rules, bad input, and the admins' list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypedDict, Unpack

import grpc
from sqlalchemy import func, select, update

from parley.admin.v1 import admin_pb2
from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2
from parley.feedback.v1 import feedback_pb2 as pb
from parley_server.db.locks import new_replica_key
from parley_server.db.models import Message, MessageState
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.chat import collect
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.database import snapshot
from tests.helpers.errors import expect_error, expect_invalid_naming
from tests.helpers.stubs import Stubs

ASSISTANT = conversation_pb2.MESSAGE_ROLE_ASSISTANT


def rate(message_id: str, rating: int = pb.RATING_THUMBS_UP, **fields: object) -> pb.SetMessageFeedbackRequest:
    return pb.SetMessageFeedbackRequest(
        feedback=pb.MessageFeedback(message_id=message_id, rating=rating, **fields)  # type: ignore[arg-type]
    )


async def answer(stubs: Stubs, account: Account, text: str = "An answer.") -> conversation_pb2.Message:
    """A finished assistant message in a new conversation of account's."""
    conversation = await new_conversation(stubs, account)
    await add_message(stubs, account, conversation.id, "A question?")
    return await add_message(stubs, account, conversation.id, text, role=ASSISTANT)


async def conversation_feedback(stubs: Stubs, account: Account, conversation_id: str) -> list[pb.MessageFeedback]:
    response = await stubs.feedback.ListConversationFeedback(
        pb.ListConversationFeedbackRequest(conversation_id=conversation_id), metadata=account.md
    )
    return list(response.feedback)


async def test_an_answer_from_a_chat_is_rated_changed_and_cleared(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="Hello"), metadata=alice.md)
    )
    answer_id = events[-1].completed.message.id
    set_up = await stubs.feedback.SetMessageFeedback(
        rate(answer_id, pb.RATING_THUMBS_DOWN, reason=pb.REASON_INACCURATE, comment="  Wrong year.  "),
        metadata=alice.md,
    )
    stored = set_up.feedback
    assert (stored.message_id, stored.conversation_id, stored.user_id) == (answer_id, cid, alice.user.id)
    assert (stored.rating, stored.reason, stored.comment) == (
        pb.RATING_THUMBS_DOWN,
        pb.REASON_INACCURATE,
        "Wrong year.",
    )
    assert stored.agent_id and stored.HasField("create_time") and stored.HasField("update_time")

    # Changing it replaces the rating: still one per answer.
    changed = await stubs.feedback.SetMessageFeedback(rate(answer_id), metadata=alice.md)
    assert (changed.feedback.rating, changed.feedback.reason, changed.feedback.comment) == (
        pb.RATING_THUMBS_UP,
        pb.REASON_UNSPECIFIED,
        "",
    )
    assert changed.feedback.create_time == stored.create_time
    assert changed.feedback.update_time.ToDatetime() >= stored.update_time.ToDatetime()
    assert [f.rating for f in await conversation_feedback(stubs, alice, cid)] == [pb.RATING_THUMBS_UP]

    # Deleting clears it; deleting again is harmless (a retry).
    for _ in range(2):
        await stubs.feedback.DeleteMessageFeedback(
            pb.DeleteMessageFeedbackRequest(message_id=answer_id), metadata=alice.md
        )
    assert await conversation_feedback(stubs, alice, cid) == []


async def test_a_conversations_ratings_come_in_message_order_and_go_with_its_messages(
    stubs: Stubs, alice: Account
) -> None:
    conversation = await new_conversation(stubs, alice)
    answers = []
    for n in range(3):
        await add_message(stubs, alice, conversation.id, f"Question {n}?")
        answers.append(await add_message(stubs, alice, conversation.id, f"Answer {n}.", role=ASSISTANT))
    for message, rating in ((answers[2], pb.RATING_THUMBS_UP), (answers[0], pb.RATING_THUMBS_DOWN)):
        await stubs.feedback.SetMessageFeedback(rate(message.id, rating), metadata=alice.md)
    listed = await conversation_feedback(stubs, alice, conversation.id)
    assert [(f.message_id, f.rating) for f in listed] == [
        (answers[0].id, pb.RATING_THUMBS_DOWN),
        (answers[2].id, pb.RATING_THUMBS_UP),
    ]
    await stubs.conversation.ClearMessages(
        conversation_pb2.ClearMessagesRequest(conversation_id=conversation.id), metadata=alice.md
    )
    assert await conversation_feedback(stubs, alice, conversation.id) == []


async def test_only_the_owner_rates_and_sees_ratings(stubs: Stubs, alice: Account) -> None:
    bob = await stubs.active_account("bob@example.com")
    admin = await stubs.admin_account()
    message = await answer(stubs, alice)
    await stubs.feedback.SetMessageFeedback(rate(message.id), metadata=alice.md)
    before = await snapshot(stubs.app)
    for call in (
        stubs.feedback.SetMessageFeedback(rate(message.id, pb.RATING_THUMBS_DOWN), metadata=bob.md),
        stubs.feedback.DeleteMessageFeedback(pb.DeleteMessageFeedbackRequest(message_id=message.id), metadata=bob.md),
        stubs.feedback.SetMessageFeedback(rate(str(uuid.uuid4())), metadata=alice.md),
    ):
        await expect_error(call, grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND")
    await expect_error(
        conversation_feedback(stubs, bob, message.conversation_id),
        grpc.StatusCode.NOT_FOUND,
        "CONVERSATION_NOT_FOUND",
    )
    # An admin reads everyone's in ListFeedback, but cannot rate others' answers either.
    await expect_error(
        stubs.feedback.SetMessageFeedback(rate(message.id), metadata=admin.md),
        grpc.StatusCode.NOT_FOUND,
        "MESSAGE_NOT_FOUND",
    )
    assert await snapshot(stubs.app) == before


async def test_questions_and_answers_still_being_written_cannot_be_rated(stubs: Stubs, alice: Account) -> None:
    conversation = await new_conversation(stubs, alice)
    question = await add_message(stubs, alice, conversation.id, "A question?")
    streaming = await add_message(stubs, alice, conversation.id, "Half an ans", role=ASSISTANT)
    other_replica = new_replica_key()
    # A live replica writes the answer: it holds its key, so the server's sweep leaves the answer streaming.
    async with stubs.app.database.transaction() as replica:
        await replica.execute(select(func.pg_advisory_xact_lock(other_replica)))
        async with stubs.app.database.transaction() as db:
            await db.execute(
                update(Message)
                .where(Message.id == uuid.UUID(streaming.id))
                .values(state=MessageState.STREAMING, generation_owner=other_replica)
            )
        before = await snapshot(stubs.app)
        for message_id, words in ((question.id, "only answers"), (streaming.id, "still being written")):
            details = await expect_error(
                stubs.feedback.SetMessageFeedback(rate(message_id), metadata=alice.md),
                grpc.StatusCode.FAILED_PRECONDITION,
                "NOT_AN_ANSWER",
            )
            assert words in details.message
        assert await snapshot(stubs.app) == before


async def test_bad_ratings_are_refused_naming_the_fields(stubs: Stubs, alice: Account) -> None:
    message = await answer(stubs, alice)
    set_feedback = stubs.feedback.SetMessageFeedback
    cases = [
        (rate(message.id, pb.RATING_UNSPECIFIED), "feedback.rating"),
        (rate(message.id, 7), "feedback.rating"),  # a number from a newer client
        (rate(message.id, comment="x" * 2001), "feedback.comment"),
        (rate(message.id, comment="bad\x00byte"), "feedback.comment"),
        (rate("not-a-uuid"), "feedback.message_id"),
        (rate(""), "feedback.message_id"),
    ]
    for request, field in cases:
        await expect_invalid_naming(stubs.app, set_feedback(request, metadata=alice.md), field)
    await expect_invalid_naming(
        stubs.app, set_feedback(rate(message.id, reason=99), metadata=alice.md), "feedback.reason"
    )
    await expect_invalid_naming(
        stubs.app,
        stubs.feedback.DeleteMessageFeedback(pb.DeleteMessageFeedbackRequest(message_id="x"), metadata=alice.md),
        "message_id",
    )


async def test_admins_list_everyones_ratings_newest_first_with_filters(stubs: Stubs, alice: Account) -> None:
    bob = await stubs.active_account("bob@example.com")
    admin = await stubs.admin_account()
    rated = []
    for account, rating, comment in (
        (alice, pb.RATING_THUMBS_UP, ""),
        (bob, pb.RATING_THUMBS_DOWN, "Too long."),
        (alice, pb.RATING_THUMBS_DOWN, ""),
    ):
        message = await answer(stubs, account)
        await stubs.feedback.SetMessageFeedback(rate(message.id, rating, comment=comment), metadata=account.md)
        rated.append(message.id)

    class Filters(TypedDict, total=False):
        agent_id: str
        rating: pb.Rating
        with_comment: bool

    async def listed(**request: Unpack[Filters]) -> list[str]:
        ids, token = [], ""
        while True:
            page: pb.ListFeedbackResponse = await stubs.feedback.ListFeedback(
                pb.ListFeedbackRequest(page_size=2, page_token=token, **request),
                metadata=admin.md,
            )
            ids += [f.message_id for f in page.feedback]
            if not (token := page.next_page_token):
                return ids

    assert await listed() == rated[::-1]
    assert await listed(rating=pb.RATING_THUMBS_DOWN) == [rated[2], rated[1]]
    assert await listed(with_comment=True) == [rated[1]]
    agent = (await stubs.feedback.ListFeedback(pb.ListFeedbackRequest(), metadata=admin.md)).feedback[0].agent_id
    assert await listed(agent_id=agent) == rated[::-1]
    assert await listed(agent_id=str(uuid.uuid4())) == []
    await expect_error(
        stubs.feedback.ListFeedback(pb.ListFeedbackRequest(), metadata=alice.md),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_REQUIRED",
    )
    await expect_invalid_naming(
        stubs.app, stubs.feedback.ListFeedback(pb.ListFeedbackRequest(agent_id="x"), metadata=admin.md), "agent_id"
    )
    await expect_invalid_naming(
        stubs.app, stubs.feedback.ListFeedback(pb.ListFeedbackRequest(page_size=-1), metadata=admin.md), "page_size"
    )


async def test_get_stats_counts_ratings_per_agent_and_day(stubs: Stubs, alice: Account) -> None:
    bob = await stubs.active_account("bob@example.com")
    admin = await stubs.admin_account()
    for account, rating in ((alice, pb.RATING_THUMBS_DOWN), (bob, pb.RATING_THUMBS_DOWN), (bob, pb.RATING_THUMBS_UP)):
        message = await answer(stubs, account)
        await stubs.feedback.SetMessageFeedback(rate(message.id, rating), metadata=account.md)
    # A rating changed counts once, as it is now.
    await stubs.feedback.SetMessageFeedback(rate(message.id, pb.RATING_THUMBS_DOWN), metadata=bob.md)
    stubs.app.admin.clear_stats_cache()
    stats = (await stubs.admin.GetStats(admin_pb2.GetStatsRequest(), metadata=admin.md)).stats
    agent = await agent_id(stubs.app)
    today = datetime.now(UTC).date().isoformat()
    assert [(f.day, f.agent_id, f.thumbs_up, f.thumbs_down) for f in stats.feedback_per_day_per_agent] == [
        (today, agent, 0, 3)
    ]
