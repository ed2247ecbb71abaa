"""Answers nobody is generating any more: they end, and their streams with them.

A message can be left STREAMING by this very replica, e.g. when PostgreSQL
committed a SendMessage but the connection dropped before the server heard
so: no generation runs it. The replica's own sweep fails it (with the text
stored so far) without touching its live generations, and a ResumeStream on
it ends instead of waiting forever. An end stored while the event bus was
down is noticed by a follower all the same.
"""

from __future__ import annotations

import asyncio
import uuid

from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2
from parley_server.db.models import Message, MessageRole, MessageState
from tests.helpers.accounts import Account
from tests.helpers.chat import collect, kinds, read_rest, stored, text_of
from tests.helpers.conversations import new_conversation
from tests.helpers.stubs import Stubs

HANG_SECONDS = 60
LONG = " ".join(f"live{i}" for i in range(150))


async def stranded(stubs: Stubs, cid: str, text: str) -> str:
    """A STREAMING answer owned by this replica that no generation runs."""
    message_id = uuid.uuid4()
    async with stubs.app.database.transaction() as db:
        db.add(
            Message(
                id=message_id,
                conversation_id=uuid.UUID(cid),
                role=MessageRole.ASSISTANT,
                content=text,
                state=MessageState.STREAMING,
                generation_owner=stubs.app.chat.generations.owner_key,
            )
        )
    return str(message_id)


async def test_own_stranded_answer_is_failed_with_its_text_and_live_ones_are_not(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    orphan = await stranded(stubs, cid, "Echo: half an")
    live = stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content=LONG), metadata=alice.md)
    accepted = await live.read()
    resume = asyncio.create_task(
        collect(stubs.chat.ResumeStream(chat_pb2.ResumeStreamRequest(message_id=orphan), metadata=alice.md))
    )
    generations = stubs.app.chat.generations
    # Two sweeps while the live generation runs: the first only suspects, the second fails.
    await generations.sweep()
    await generations.sweep()

    events = await asyncio.wait_for(resume, HANG_SECONDS)
    assert kinds(events)[-1] == "failed" and text_of(events) == "Echo: half an"
    assert (await stored(stubs, orphan)).state is MessageState.FAILED
    rest = await asyncio.wait_for(read_rest(live), HANG_SECONDS)
    assert kinds(rest)[-1] == "completed"
    assert rest[-1].completed.message.content == "Echo: " + LONG
    assert (await stored(stubs, accepted.accepted.assistant_message_id)).state is MessageState.COMPLETE


async def test_resume_sees_an_end_that_was_never_announced(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    message_id = await stranded(stubs, cid, "Echo: all")
    resume = asyncio.create_task(
        collect(stubs.chat.ResumeStream(chat_pb2.ResumeStreamRequest(message_id=message_id), metadata=alice.md))
    )
    await asyncio.sleep(0.5)  # the follower is waiting for events
    async with stubs.app.database.transaction() as db:
        message = await db.get(Message, uuid.UUID(message_id))
        assert message is not None
        message.content, message.state, message.generation_owner = "Echo: all of it", MessageState.COMPLETE, None
    events = await asyncio.wait_for(resume, HANG_SECONDS)
    assert kinds(events)[-1] == "completed" and text_of(events) == "Echo: all of it"
    assert events[-1].completed.message.state == conversation_pb2.MESSAGE_STATE_COMPLETE
