"""Conversation metadata: set on create, replaced by update, limited as OpenAI limits it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2 as pb
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
    return (await stubs.conversation.CreateConversation(request, metadata=account.md)).conversation


async def _update(stubs: Stubs, account: Account, conversation: pb.Conversation, *paths: str) -> pb.Conversation:
    response = await stubs.conversation.UpdateConversation(
        pb.UpdateConversationRequest(conversation=conversation, update_mask=FieldMask(paths=list(paths))),
        metadata=account.md,
    )
    return response.conversation


async def _get(stubs: Stubs, account: Account, conversation_id: str) -> pb.Conversation:
    request = pb.GetConversationRequest(conversation_id=conversation_id)
    return (await stubs.conversation.GetConversation(request, metadata=account.md)).conversation


async def _list(stubs: Stubs, account: Account, **fields: Any) -> pb.ListConversationsResponse:
    return await stubs.conversation.ListConversations(
        pb.ListConversationsRequest(**fields),
        metadata=account.md,  # type: ignore[arg-type]
    )


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
