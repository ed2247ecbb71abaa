"""ListConversations: order, filters, keyset pages and their tokens."""

from __future__ import annotations

from typing import TypedDict, Unpack

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from parley.conversation.v1 import conversation_pb2 as pb
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.conversations import ListFields, add_message, new_conversation
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error
from tests.helpers.stubs import Stubs


async def _list(stubs: Stubs, account: Account, **fields: Unpack[ListFields]) -> pb.ListConversationsResponse:
    response: pb.ListConversationsResponse = await stubs.conversation.ListConversations(
        pb.ListConversationsRequest(**fields),
        metadata=account.md,
    )
    return response


async def _titles(stubs: Stubs, account: Account, **fields: Unpack[ListFields]) -> list[str]:
    return [c.title for c in (await _list(stubs, account, **fields)).conversations]


class Flags(TypedDict, total=False):
    archived: bool
    pinned: bool


async def _set(stubs: Stubs, account: Account, conversation: pb.Conversation, **fields: Unpack[Flags]) -> None:
    await stubs.conversation.UpdateConversation(
        pb.UpdateConversationRequest(
            conversation=pb.Conversation(id=conversation.id, **fields), update_mask=FieldMask(paths=list(fields))
        ),
        metadata=account.md,
    )


async def test_newest_activity_first_and_filters(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    await sql(stubs.app, "UPDATE users SET premium = true WHERE email = 'ada@example.com'")
    ada = await stubs.login("ada@example.com")  # a token that carries the premium flag
    first = await new_conversation(stubs, ada, "first")
    second = await new_conversation(stubs, ada, "second", slug="writer")
    third = await new_conversation(stubs, ada, "third")
    await new_conversation(stubs, bob, "bob's")
    assert await _titles(stubs, ada) == ["third", "second", "first"]
    # The same request by another user (a request is worked out once per user: conversations/service.py).
    assert await _titles(stubs, bob) == ["bob's"]
    # A new message is activity: its conversation moves to the front.
    await add_message(stubs, ada, first.id, "bump")
    assert await _titles(stubs, ada) == ["first", "third", "second"]
    await _set(stubs, ada, third, archived=True)
    await _set(stubs, ada, second, pinned=True)
    assert await _titles(stubs, ada) == ["second", "third", "first"]
    assert await _titles(stubs, ada, archived=True) == ["third"]
    assert await _titles(stubs, ada, archived=False) == ["second", "first"]
    assert await _titles(stubs, ada, pinned=True) == ["second"]
    assert await _titles(stubs, ada, pinned=False, archived=False) == ["first"]
    assert await _titles(stubs, ada, agent_id=await agent_id(stubs.app, "writer")) == ["second"]
    assert await _titles(stubs, ada, agent_id=await agent_id(stubs.app, "code-reviewer")) == []


async def test_pages_are_stable_while_conversations_are_inserted(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    for i in range(7):
        await new_conversation(stubs, ada, f"old {i}")
    seen: list[str] = []
    token = ""
    while True:
        page = await _list(stubs, ada, page_size=3, page_token=token)
        assert len(page.conversations) <= 3
        seen += [c.title for c in page.conversations]
        token = page.next_page_token
        if not token:
            break
        await new_conversation(stubs, ada, f"new after {len(seen)}")
    # Every older conversation exactly once, newest first; the new ones wait for a fresh listing.
    assert seen == [f"old {i}" for i in reversed(range(7))]
    assert len(await _titles(stubs, ada)) == 7 + 2


async def test_page_sizes(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    await sql(
        stubs.app,
        "INSERT INTO conversations (id, user_id, agent_id, title, archived, pinned, message_count, update_time)"
        " SELECT gen_random_uuid(), :user_id, (SELECT id FROM agents WHERE slug = 'assistant'), 'c' || n,"
        " false, false, 0, now() - make_interval(secs => n) FROM generate_series(1, 205) AS n",
        user_id=ada.user.id,
    )
    default = await _list(stubs, ada)
    assert len(default.conversations) == 50 and default.next_page_token
    assert default.conversations[0].title == "c1"
    capped = await _list(stubs, ada, page_size=1000)
    assert len(capped.conversations) == 200
    rest = await _list(stubs, ada, page_size=1000, page_token=capped.next_page_token)
    assert [c.title for c in rest.conversations] == [f"c{n}" for n in range(201, 206)]
    assert not rest.next_page_token


async def test_bad_page_requests_are_invalid_argument(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    for i in range(3):
        await new_conversation(stubs, ada, f"c{i}")
    token = (await _list(stubs, ada, page_size=1, query="c")).next_page_token
    assert token
    before = await snapshot(stubs.app)
    bad: list[tuple[Account, ListFields, str]] = [
        (ada, {"page_size": -1}, "page_size"),
        (ada, {"page_token": "not a token"}, "page_token"),
        (ada, {"page_token": token[:-3] + "AAA", "query": "c"}, "page_token"),
        (ada, {"page_token": token + "A", "query": "c"}, "page_token"),
        (ada, {"page_token": "A" * 5000}, "page_token"),
        # The token only resumes the query that made it: other filters, or another user.
        (ada, {"page_token": token}, "page_token"),
        (ada, {"page_token": token, "query": "d"}, "page_token"),
        (ada, {"page_token": token, "query": "c", "archived": False}, "page_token"),
        (ada, {"page_token": token, "query": "c", "pinned": True}, "page_token"),
        (ada, {"page_token": token, "query": "c", "agent_id": await agent_id(stubs.app)}, "page_token"),
        (bob, {"page_token": token, "query": "c"}, "page_token"),
        (ada, {"agent_id": "not-a-uuid"}, "agent_id"),
    ]
    for account, fields, field in bad:
        details = await expect_error(_list(stubs, account, **fields), grpc.StatusCode.INVALID_ARGUMENT)
        assert field in details.violations, (fields, details.violations)
    assert await snapshot(stubs.app) == before
    resumed = await _list(stubs, ada, page_size=1, query="c", page_token=token)
    assert [c.title for c in resumed.conversations] == ["c1"]
