"""Conversation metadata: set on create, replaced by update, limited as OpenAI limits it, and a
ListConversations filter on one pair."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2 as pb
from parley_server.conversations import sql as conversation_sql
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.conversations import new_conversation
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error, expect_invalid_exactly
from tests.helpers.stubs import Stubs

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def _create(stubs: Stubs, account: Account, metadata: dict[str, str], **fields: Any) -> pb.Conversation:
    request = pb.CreateConversationRequest(agent_id=await agent_id(stubs.app), metadata=metadata, **fields)
    response: pb.CreateConversationResponse = await stubs.conversation.CreateConversation(request, metadata=account.md)
    return response.conversation


async def _update(stubs: Stubs, account: Account, conversation: pb.Conversation, *paths: str) -> pb.Conversation:
    response: pb.UpdateConversationResponse = await stubs.conversation.UpdateConversation(
        pb.UpdateConversationRequest(conversation=conversation, update_mask=FieldMask(paths=list(paths))),
        metadata=account.md,
    )
    return response.conversation


async def _get(stubs: Stubs, account: Account, conversation_id: str) -> pb.Conversation:
    request = pb.GetConversationRequest(conversation_id=conversation_id)
    response: pb.GetConversationResponse = await stubs.conversation.GetConversation(request, metadata=account.md)
    return response.conversation


async def _list(stubs: Stubs, account: Account, **fields: Any) -> pb.ListConversationsResponse:
    response: pb.ListConversationsResponse = await stubs.conversation.ListConversations(
        pb.ListConversationsRequest(**fields), metadata=account.md
    )
    return response


async def _titles(stubs: Stubs, account: Account, **fields: Any) -> list[str]:
    return [c.title for c in (await _list(stubs, account, **fields)).conversations]


async def _stored(stubs: Stubs, conversation_id: str) -> Any:
    ((metadata,),) = await sql(stubs.app, "SELECT metadata FROM conversations WHERE id = :id", id=conversation_id)
    return metadata


# -- create, read, update -------------------------------------------------------


async def test_create_stores_metadata_and_every_read_shows_it(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    pairs = {"project": "alpha", "ticket": "PAR-14", "note": "", "ключ": "значение ✓"}
    request_id = str(uuid.uuid4())
    created = await _create(stubs, ada, pairs, title="Tagged", request_id=request_id)
    assert dict(created.metadata) == pairs
    assert await _stored(stubs, created.id) == pairs
    assert dict((await _get(stubs, ada, created.id)).metadata) == pairs
    (listed,) = (await _list(stubs, ada)).conversations
    assert dict(listed.metadata) == pairs
    # A retry returns the first conversation as it was, whatever metadata it carries.
    retried = await _create(stubs, ada, {"project": "other"}, title="Tagged", request_id=request_id)
    assert retried.id == created.id and dict(retried.metadata) == pairs
    # Without metadata: an empty map, stored as the empty object.
    plain = await new_conversation(stubs, ada, "Plain")
    assert dict(plain.metadata) == {} and await _stored(stubs, plain.id) == {}
    assert dict((await _get(stubs, ada, plain.id)).metadata) == {}


async def test_fresh_conversation_has_no_metadata(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    response = await stubs.conversation.GetOrCreateFreshConversation(
        pb.GetOrCreateFreshConversationRequest(agent_id=await agent_id(stubs.app)), metadata=ada.md
    )
    assert response.created and dict(response.conversation.metadata) == {}


async def test_update_replaces_the_whole_map_and_an_empty_map_clears_it(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    original = await _create(stubs, ada, {"project": "alpha", "tier": "gold"}, title="Kept")
    replaced = await _update(stubs, ada, pb.Conversation(id=original.id, metadata={"tier": "silver"}), "metadata")
    assert dict(replaced.metadata) == {"tier": "silver"}
    assert replaced.title == "Kept" and replaced.update_time.ToDatetime() > original.update_time.ToDatetime()
    assert dict((await _get(stubs, ada, original.id)).metadata) == {"tier": "silver"}
    # Metadata not named in the mask is ignored, even when it would be invalid.
    renamed = await _update(
        stubs, ada, pb.Conversation(id=original.id, title="Renamed", metadata={"": "x" * 600}), "title"
    )
    assert renamed.title == "Renamed" and dict(renamed.metadata) == {"tier": "silver"}
    cleared = await _update(stubs, ada, pb.Conversation(id=original.id), "metadata")
    assert dict(cleared.metadata) == {}
    assert await _stored(stubs, original.id) == {}
    assert dict((await _get(stubs, ada, original.id)).metadata) == {}


async def test_watchers_see_metadata_updates(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada, "Watched")
    watch = stubs.chat.WatchConversation(
        chat_pb2.WatchConversationRequest(conversation_id=conversation.id), metadata=ada.md
    )
    try:
        assert dict((await watch.read()).conversation_updated.metadata) == {}
        await _update(stubs, ada, pb.Conversation(id=conversation.id, metadata={"stage": "review"}), "metadata")
        async with asyncio.timeout(10):
            event = await watch.read()
        assert event.WhichOneof("event") == "conversation_updated"
        assert dict(event.conversation_updated.metadata) == {"stage": "review"}
    finally:
        watch.cancel()


async def test_other_users_conversation_is_not_found_and_keeps_its_metadata(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    bobs = await _create(stubs, bob, {"owner": "bob"})
    before = await snapshot(stubs.app)
    await expect_error(
        _update(stubs, ada, pb.Conversation(id=bobs.id, metadata={"owner": "ada"}), "metadata"), NOT_FOUND
    )
    assert await snapshot(stubs.app) == before


# -- limits -----------------------------------------------------------------------


def _bad_maps(field: str) -> list[tuple[dict[str, str], set[str]]]:
    """Maps over OpenAI's limits and the violations (field paths) each must get."""
    long_key = "k" * 65
    return [
        ({f"key{i}": "v" for i in range(17)}, {field}),
        ({long_key: "v"}, {f'{field}["{"k" * 64}…"]'}),
        ({"big": "v" * 513}, {f'{field}["big"]'}),
        ({"": "v"}, {f'{field}[""]'}),
        ({"nul": "a\x00b"}, {f'{field}["nul"]'}),
        ({"ok": "v", "": "v", "big": "v" * 513}, {f'{field}[""]', f'{field}["big"]'}),
    ]


async def test_metadata_over_the_limits_is_invalid_argument_and_changes_nothing(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await _create(stubs, ada, {"project": "alpha"}, title="Unchanged")
    assistant = await agent_id(stubs.app)
    for bad, fields in _bad_maps("metadata"):
        request = pb.CreateConversationRequest(agent_id=assistant, metadata=bad)
        await expect_invalid_exactly(stubs.app, stubs.conversation.CreateConversation(request, metadata=ada.md), fields)
    for bad, fields in _bad_maps("conversation.metadata"):
        changes = pb.Conversation(id=conversation.id, title="Changed", metadata=bad)
        await expect_invalid_exactly(stubs.app, _update(stubs, ada, changes, "title", "metadata"), fields)
    assert dict((await _get(stubs, ada, conversation.id)).metadata) == {"project": "alpha"}
    # Exactly at the limits is fine.
    full = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert dict((await _create(stubs, ada, full)).metadata) == full
    updated = await _update(stubs, ada, pb.Conversation(id=conversation.id, metadata=full), "metadata")
    assert dict(updated.metadata) == full


# -- ListConversations' filter ----------------------------------------------------


async def test_filter_returns_only_the_callers_conversations_with_the_pair(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    await _create(stubs, ada, {"project": "alpha"}, title="alpha 1")
    await _create(stubs, ada, {"project": "beta"}, title="beta")
    await _create(stubs, ada, {"project": "alpha", "tier": "gold"}, title="alpha 2")
    await _create(stubs, ada, {"Project": "alpha", "team": "project"}, title="other keys")
    await _create(stubs, ada, {"note": ""}, title="empty value")
    await new_conversation(stubs, ada, "none")
    await _create(stubs, bob, {"project": "alpha"}, title="bob's alpha")
    assert await _titles(stubs, ada, metadata_key="project", metadata_value="alpha") == ["alpha 2", "alpha 1"]
    assert await _titles(stubs, bob, metadata_key="project", metadata_value="alpha") == ["bob's alpha"]
    assert await _titles(stubs, ada, metadata_key="tier", metadata_value="gold") == ["alpha 2"]
    assert await _titles(stubs, ada, metadata_key="project", metadata_value="Alpha") == []
    assert await _titles(stubs, ada, metadata_key="note", metadata_value="") == ["empty value"]
    assert await _titles(stubs, ada, metadata_key="project", metadata_value="") == []
    # With the other filters; an update moves a conversation in or out.
    (alpha2, alpha1) = (await _list(stubs, ada, metadata_key="project", metadata_value="alpha")).conversations
    await _update(stubs, ada, pb.Conversation(id=alpha1.id, archived=True), "archived")
    assert await _titles(stubs, ada, metadata_key="project", metadata_value="alpha", archived=False) == ["alpha 2"]
    assert await _titles(stubs, ada, metadata_key="project", metadata_value="alpha", query="alpha 1") == ["alpha 1"]
    await _update(stubs, ada, pb.Conversation(id=alpha2.id), "metadata")
    assert await _titles(stubs, ada, metadata_key="project", metadata_value="alpha") == ["alpha 1"]


async def test_filter_needs_key_and_value_within_the_limits(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    await _create(stubs, ada, {"project": "alpha"})
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"metadata_key": "project"}, {"metadata_value"}),
        ({"metadata_value": "alpha"}, {"metadata_key"}),
        ({"metadata_value": ""}, {"metadata_key"}),
        ({"metadata_key": "k" * 65, "metadata_value": "alpha"}, {"metadata_key"}),
        ({"metadata_key": "project", "metadata_value": "v" * 513}, {"metadata_value"}),
        ({"metadata_key": "pro\x00ject", "metadata_value": "alpha"}, {"metadata_key"}),
    ]
    for fields, violations in cases:
        await expect_invalid_exactly(stubs.app, _list(stubs, ada, **fields), violations)


async def test_filtered_pages_hold_every_match_once_and_tokens_keep_the_filter(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    for i in range(7):
        await _create(stubs, ada, {"batch": "b1"}, title=f"match {i}")
        await _create(stubs, ada, {"batch": "b2"}, title=f"other {i}")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await _list(stubs, ada, page_size=3, page_token=token, metadata_key="batch", metadata_value="b1")
        assert len(page.conversations) <= 3
        seen += [c.title for c in page.conversations]
        pages += 1
        token = page.next_page_token
        if not token:
            break
        if pages == 1:
            # The token resumes only the listing that made it.
            for other in ({}, {"metadata_key": "batch", "metadata_value": "b2"}):
                details = await expect_error(_list(stubs, ada, page_size=3, page_token=token, **other), INVALID)
                assert "page_token" in details.violations
    assert seen == [f"match {i}" for i in reversed(range(7))]
    assert pages == 3


async def test_filter_uses_the_metadata_index(stubs: Stubs) -> None:
    """With many conversations, PostgreSQL answers the pair from ix_conversations_metadata
    in both of a page's statements."""
    ada = await stubs.active_account()
    await sql(
        stubs.app,
        "INSERT INTO conversations (id, user_id, agent_id, title, archived, pinned, message_count, metadata)"
        " SELECT gen_random_uuid(), :user_id, (SELECT id FROM agents WHERE slug = 'assistant'), 'c' || n,"
        " false, false, 0, jsonb_build_object('ticket', 'T-' || n, 'project', 'p' || (n % 10))"
        " FROM generate_series(1, 20000) AS n",
        user_id=ada.user.id,
    )
    await sql(stubs.app, "ANALYZE conversations")
    page = conversation_sql.conversations_page(
        uuid.UUID(ada.user.id),
        agent_id=None,
        archived=None,
        pinned=None,
        tsquery=None,
        metadata=json.dumps({"ticket": "T-123"}),
        after=None,
        limit=51,
    )
    for statement in (page.version, page.rows):
        plan = await stubs.app.database.fetch(f"EXPLAIN {statement}", *page.args, into=lambda record: str(record[0]))
        assert any("ix_conversations_metadata" in line for line in plan), "\n".join(plan)
    assert await _titles(stubs, ada, metadata_key="ticket", metadata_value="T-123") == ["c123"]
