"""ConversationService over real gRPC: conversations, messages, history, titles, cleanup."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from parley.conversation.v1 import conversation_pb2 as pb
from parley_server.common.caller import Caller
from parley_server.common.errors import InvalidArgument
from parley_server.common.pagination import Paginator
from parley_server.conversations import sql as conversation_sql
from parley_server.conversations.service import MAX_CONTENT_LENGTH, ConversationChanges, ConversationService
from parley_server.conversations.titles import DEFAULT_TITLE, heuristic_title
from parley_server.conversations.views import ConversationView
from parley_server.db.database import asyncpg_dsn, schema_settings
from parley_server.db.models import MessageRole, Role, UserState
from parley_server.events.schema import ConversationChanged, ConversationDeleted, Event, MessageCreated
from parley_server.settings import DEFAULT_DB_SCHEMA
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error
from tests.helpers.stubs import Stubs

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


# -- CreateConversation / GetConversation -------------------------------------


async def test_create_and_get_conversation(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    assistant = await agent_id(stubs.app)
    created = (
        await stubs.conversation.CreateConversation(
            pb.CreateConversationRequest(agent_id=assistant, title="  Trip plans  "), metadata=ada.md
        )
    ).conversation
    assert uuid.UUID(created.id)
    assert (created.agent_id, created.title, created.message_count) == (assistant, "Trip plans", 0)
    assert not created.archived and not created.pinned
    assert created.HasField("create_time") and created.HasField("update_time")
    assert not created.HasField("last_message_time")
    fetched = await stubs.conversation.GetConversation(
        pb.GetConversationRequest(conversation_id=created.id), metadata=ada.md
    )
    assert fetched.conversation == created


async def test_get_and_list_show_the_stored_times_to_the_microsecond(stubs: Stubs) -> None:
    """GetConversation and ListConversations read times as microseconds from SQL,
    the other RPCs as datetimes from the ORM: both must show the same instants."""
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada, "Times")
    await add_message(stubs, ada, conversation.id, "hello")
    pinned = (
        await stubs.conversation.UpdateConversation(
            pb.UpdateConversationRequest(
                conversation=pb.Conversation(id=conversation.id, pinned=True), update_mask=FieldMask(paths=["pinned"])
            ),
            metadata=ada.md,
        )
    ).conversation
    assert pinned.HasField("last_message_time") and pinned.update_time.nanos % 1000 == 0
    fetched = await stubs.conversation.GetConversation(
        pb.GetConversationRequest(conversation_id=conversation.id), metadata=ada.md
    )
    listed = await stubs.conversation.ListConversations(pb.ListConversationsRequest(), metadata=ada.md)
    assert fetched.conversation == pinned
    assert list(listed.conversations) == [pinned]


async def test_create_conversation_is_idempotent_per_user(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    request = pb.CreateConversationRequest(agent_id=await agent_id(stubs.app), request_id=str(uuid.uuid4()))
    first = await stubs.conversation.CreateConversation(request, metadata=ada.md)
    again = await stubs.conversation.CreateConversation(request, metadata=ada.md)
    concurrent = await asyncio.gather(
        *(stubs.conversation.CreateConversation(request, metadata=ada.md) for _ in range(5))
    )
    assert {first.conversation.id, again.conversation.id} | {r.conversation.id for r in concurrent} == {
        first.conversation.id
    }
    # Request ids are per user: bob's identical id creates bob's own conversation.
    bobs = await stubs.conversation.CreateConversation(request, metadata=bob.md)
    assert bobs.conversation.id != first.conversation.id
    assert (await sql(stubs.app, "SELECT count(*) FROM conversations"))[0][0] == 2


async def test_create_conversation_rejects_bad_input_and_changes_nothing(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    assistant = await agent_id(stubs.app)
    before = await snapshot(stubs.app)
    cases = [
        (pb.CreateConversationRequest(agent_id="not-a-uuid"), "agent_id"),
        (pb.CreateConversationRequest(), "agent_id"),
        (pb.CreateConversationRequest(agent_id=assistant, title="x" * 201), "title"),
        (pb.CreateConversationRequest(agent_id=assistant, title="bad\x01title"), "title"),
        (pb.CreateConversationRequest(agent_id=assistant, request_id="r" * 101), "request_id"),
    ]
    for request, field in cases:
        details = await expect_error(stubs.conversation.CreateConversation(request, metadata=ada.md), INVALID)
        assert field in details.violations, details.violations
    await expect_error(
        stubs.conversation.CreateConversation(
            pb.CreateConversationRequest(agent_id=str(uuid.uuid4())), metadata=ada.md
        ),
        NOT_FOUND,
        "AGENT_NOT_FOUND",
    )
    # "writer" is premium and "code-reviewer" restricted: a plain user may use neither.
    for slug, reason in [("writer", "PREMIUM_REQUIRED"), ("code-reviewer", "NOT_GRANTED")]:
        await expect_error(
            stubs.conversation.CreateConversation(
                pb.CreateConversationRequest(agent_id=await agent_id(stubs.app, slug), request_id="r1"),
                metadata=ada.md,
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            reason,
        )
    assert await snapshot(stubs.app) == before


async def test_conversation_rpcs_need_a_token(stubs: Stubs) -> None:
    await expect_error(
        stubs.conversation.ListConversations(pb.ListConversationsRequest()), grpc.StatusCode.UNAUTHENTICATED
    )


# -- ownership and malformed ids -------------------------------------------------


def _by_conversation_id(cid: str) -> list[tuple[str, object, str]]:
    """(rpc name, request, violation field) for every RPC that takes a conversation id."""
    return [
        ("GetConversation", pb.GetConversationRequest(conversation_id=cid), "conversation_id"),
        (
            "UpdateConversation",
            pb.UpdateConversationRequest(
                conversation=pb.Conversation(id=cid, title="mine now"), update_mask=FieldMask(paths=["title"])
            ),
            "conversation.id",
        ),
        ("DeleteConversation", pb.DeleteConversationRequest(conversation_id=cid), "conversation_id"),
        (
            "CreateMessage",
            pb.CreateMessageRequest(conversation_id=cid, role=pb.MESSAGE_ROLE_USER, content="hi"),
            "conversation_id",
        ),
        ("ListMessages", pb.ListMessagesRequest(conversation_id=cid), "conversation_id"),
        ("GetMessagesForAgent", pb.GetMessagesForAgentRequest(conversation_id=cid), "conversation_id"),
        ("ClearMessages", pb.ClearMessagesRequest(conversation_id=cid), "conversation_id"),
        ("GenerateTitle", pb.GenerateTitleRequest(conversation_id=cid), "conversation_id"),
    ]


async def test_another_users_conversation_is_not_found_everywhere(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    adas = await new_conversation(stubs, ada, "Ada's secrets")
    await add_message(stubs, ada, adas.id, "my secret")
    before = await snapshot(stubs.app)
    for cid in (adas.id, str(uuid.uuid4())):
        for rpc, request, _ in _by_conversation_id(cid):
            await expect_error(
                getattr(stubs.conversation, rpc)(request, metadata=bob.md), NOT_FOUND, "CONVERSATION_NOT_FOUND"
            )
    assert await snapshot(stubs.app) == before


async def test_malformed_conversation_ids_are_invalid_argument(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    await new_conversation(stubs, ada)
    before = await snapshot(stubs.app)
    for bad in ("", "nope", "123", "00000000-0000-0000-0000-00000000000g"):
        for rpc, request, field in _by_conversation_id(bad):
            details = await expect_error(getattr(stubs.conversation, rpc)(request, metadata=ada.md), INVALID)
            assert field in details.violations, (rpc, details.violations)
    assert await snapshot(stubs.app) == before


# -- UpdateConversation / DeleteConversation -------------------------------------


async def _update(stubs: Stubs, account: Account, conversation: pb.Conversation, *paths: str) -> pb.Conversation:
    response: pb.UpdateConversationResponse = await stubs.conversation.UpdateConversation(
        pb.UpdateConversationRequest(conversation=conversation, update_mask=FieldMask(paths=list(paths))),
        metadata=account.md,
    )
    return response.conversation


async def test_update_changes_only_the_masked_fields_and_bumps_update_time(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    original = await new_conversation(stubs, ada, "Original")
    changes = pb.Conversation(id=original.id, title="  Renamed ", archived=True, pinned=True)
    renamed = await _update(stubs, ada, changes, "title")
    assert (renamed.title, renamed.archived, renamed.pinned) == ("Renamed", False, False)
    assert renamed.update_time.ToDatetime() > original.update_time.ToDatetime()
    flagged = await _update(stubs, ada, changes, "archived", "pinned")
    assert (flagged.title, flagged.archived, flagged.pinned) == ("Renamed", True, True)
    cleared = await _update(stubs, ada, pb.Conversation(id=original.id), "title", "pinned")
    assert (cleared.title, cleared.archived, cleared.pinned) == ("", True, False)


async def test_a_listing_shows_every_change_of_a_conversation_listed_before(stubs: Stubs) -> None:
    """Listed rows are kept for the next listing: a change of any field must
    still show, the very next time, also one made outside this server (by
    another replica, or by hand in SQL), of which it heard nothing."""
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada, "Original")).id

    async def listed() -> pb.Conversation:
        response: pb.ListConversationsResponse = await stubs.conversation.ListConversations(
            pb.ListConversationsRequest(), metadata=ada.md
        )
        (conversation,) = response.conversations
        got = await stubs.conversation.GetConversation(pb.GetConversationRequest(conversation_id=cid), metadata=ada.md)
        assert conversation == got.conversation
        return conversation

    assert (await listed()).title == "Original"
    await _update(stubs, ada, pb.Conversation(id=cid, title="Renamed", pinned=True), "title", "pinned")
    renamed = await listed()
    assert (renamed.title, renamed.pinned) == ("Renamed", True)
    await _update(stubs, ada, pb.Conversation(id=cid, metadata={"k": "v"}), "metadata")
    assert dict((await listed()).metadata) == {"k": "v"}
    message = await add_message(stubs, ada, cid, "hello")
    after = await listed()
    assert (after.message_count, after.active_message_id, after.last_message_time) == (
        1,
        message.id,
        message.create_time,
    )
    await sql(stubs.app, "UPDATE conversations SET title = 'Renamed elsewhere' WHERE id = :id", id=cid)
    assert (await listed()).title == "Renamed elsewhere"


async def test_an_unchanged_listing_is_answered_from_the_kept_page_and_a_changed_one_is_read(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page is kept under its rows' versions: listed again unchanged, no row
    is read whole; a changed, added or deleted row makes it read again."""
    ada = await stubs.active_account()
    cids = [(await new_conversation(stubs, ada, f"c{n}")).id for n in range(3)]
    whole_reads = _count_whole_reads(stubs, monkeypatch)

    async def listed(page_token: str = "") -> pb.ListConversationsResponse:
        response: pb.ListConversationsResponse = await stubs.conversation.ListConversations(
            pb.ListConversationsRequest(page_size=2, page_token=page_token), metadata=ada.md
        )
        return response

    def titles(response: pb.ListConversationsResponse) -> list[str]:
        return [c.title for c in response.conversations]

    first = await listed()
    assert (titles(first), len(whole_reads)) == (["c2", "c1"], 1)
    again = await listed()
    assert again == first and len(whole_reads) == 1  # kept
    assert titles(await listed(again.next_page_token)) == ["c0"]
    assert len(whole_reads) == 2
    await _update(stubs, ada, pb.Conversation(id=cids[1], title="renamed"), "title")
    assert titles(await listed()) == ["renamed", "c2"] and len(whole_reads) == 3
    await new_conversation(stubs, ada, "newest")
    assert titles(await listed()) == ["newest", "renamed"] and len(whole_reads) == 4
    await stubs.conversation.DeleteConversation(pb.DeleteConversationRequest(conversation_id=cids[1]), metadata=ada.md)
    assert titles(await listed()) == ["newest", "c2"] and len(whole_reads) == 5
    assert titles(await listed()) == ["newest", "c2"] and len(whole_reads) == 5


async def test_an_unchanged_conversation_is_answered_from_the_kept_view_and_a_changed_one_is_read(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, bob = await stubs.active_account(), await stubs.active_account("bob@example.com")
    cid = (await new_conversation(stubs, ada, "kept")).id
    whole_reads = _count_whole_reads(stubs, monkeypatch)

    async def got(account: Account) -> pb.Conversation:
        request = pb.GetConversationRequest(conversation_id=cid)
        response: pb.GetConversationResponse = await stubs.conversation.GetConversation(request, metadata=account.md)
        return response.conversation

    first = await got(ada)
    assert (await got(ada), len(whole_reads)) == (first, 1)
    await expect_error(got(bob), grpc.StatusCode.NOT_FOUND)  # kept or not, another user's is not found
    await sql(stubs.app, "UPDATE conversations SET title = 'changed by hand' WHERE id = :id", id=cid)
    assert ((await got(ada)).title, len(whole_reads)) == ("changed by hand", 2)
    await stubs.conversation.DeleteConversation(pb.DeleteConversationRequest(conversation_id=cid), metadata=ada.md)
    await expect_error(got(ada), grpc.StatusCode.NOT_FOUND)


def _count_whole_reads(stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that read conversations whole (into ConversationView), from now on."""
    database = stubs.app.database
    fetch = database.fetch
    whole_reads: list[str] = []

    async def counted(statement: str, *args: object, into: Any) -> list[Any]:
        if into == ConversationView.of:
            whole_reads.append(statement)
        return await fetch(statement, *args, into=into)

    monkeypatch.setattr(database, "fetch", counted)
    return whole_reads


async def test_update_rejects_bad_masks_and_titles_and_changes_nothing(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada, "Keep me")
    before = await snapshot(stubs.app)
    cases = [
        (["title", "message_count"], "update_mask.paths"),
        (["agent_id"], "update_mask.paths"),
        (["id"], "update_mask.paths"),
        ([], "update_mask"),
    ]
    for paths, field in cases:
        details = await expect_error(
            _update(stubs, ada, pb.Conversation(id=conversation.id, title="Changed"), *paths), INVALID
        )
        assert field in details.violations, details.violations
    details = await expect_error(
        _update(stubs, ada, pb.Conversation(id=conversation.id, title="x" * 201), "title"), INVALID
    )
    assert "conversation.title" in details.violations
    assert await snapshot(stubs.app) == before


async def test_delete_conversation_removes_its_messages(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    doomed = await new_conversation(stubs, ada)
    kept = await new_conversation(stubs, ada)
    for text in ("one", "two"):
        await add_message(stubs, ada, doomed.id, text)
    await add_message(stubs, ada, kept.id, "stays")
    await stubs.conversation.DeleteConversation(
        pb.DeleteConversationRequest(conversation_id=doomed.id), metadata=ada.md
    )
    await expect_error(
        stubs.conversation.GetConversation(pb.GetConversationRequest(conversation_id=doomed.id), metadata=ada.md),
        NOT_FOUND,
    )
    assert await sql(stubs.app, "SELECT content FROM messages") == [("stays",)]
    await expect_error(
        stubs.conversation.DeleteConversation(pb.DeleteConversationRequest(conversation_id=doomed.id), metadata=ada.md),
        NOT_FOUND,
    )


# -- GetOrCreateFreshConversation ------------------------------------------------


async def test_get_or_create_fresh_reuses_the_empty_conversation(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    request = pb.GetOrCreateFreshConversationRequest(agent_id=await agent_id(stubs.app))
    first = await stubs.conversation.GetOrCreateFreshConversation(request, metadata=ada.md)
    again = await stubs.conversation.GetOrCreateFreshConversation(request, metadata=ada.md)
    assert first.created and not again.created
    assert again.conversation.id == first.conversation.id
    # Once it has a message it is no longer fresh; an archived empty one is not reused either.
    await add_message(stubs, ada, first.conversation.id, "hello")
    second = await stubs.conversation.GetOrCreateFreshConversation(request, metadata=ada.md)
    assert second.created and second.conversation.id != first.conversation.id
    await _update(stubs, ada, pb.Conversation(id=second.conversation.id, archived=True), "archived")
    third = await stubs.conversation.GetOrCreateFreshConversation(request, metadata=ada.md)
    assert third.created and third.conversation.id not in {first.conversation.id, second.conversation.id}
    # Bob's fresh conversation is his own.
    bobs = await stubs.conversation.GetOrCreateFreshConversation(request, metadata=bob.md)
    assert bobs.created and bobs.conversation.id != third.conversation.id


async def test_get_or_create_fresh_never_creates_two_under_concurrency(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    request = pb.GetOrCreateFreshConversationRequest(agent_id=await agent_id(stubs.app))
    responses = await asyncio.gather(
        *(stubs.conversation.GetOrCreateFreshConversation(request, metadata=ada.md) for _ in range(10))
    )
    assert len({r.conversation.id for r in responses}) == 1
    assert sum(r.created for r in responses) == 1
    assert (await sql(stubs.app, "SELECT count(*) FROM conversations"))[0][0] == 1


async def test_get_or_create_fresh_checks_the_agent(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    before = await snapshot(stubs.app)
    details = await expect_error(
        stubs.conversation.GetOrCreateFreshConversation(
            pb.GetOrCreateFreshConversationRequest(agent_id="x"), metadata=ada.md
        ),
        INVALID,
    )
    assert "agent_id" in details.violations
    await expect_error(
        stubs.conversation.GetOrCreateFreshConversation(
            pb.GetOrCreateFreshConversationRequest(agent_id=await agent_id(stubs.app, "writer")), metadata=ada.md
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "PREMIUM_REQUIRED",
    )
    assert await snapshot(stubs.app) == before


# -- CreateMessage / ListMessages / ClearMessages -------------------------------


async def test_create_message_updates_the_conversation(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada)
    message = await add_message(stubs, ada, conversation.id, "  keep   my spacing\r\n", pb.MESSAGE_ROLE_ASSISTANT)
    assert message.conversation_id == conversation.id
    assert (message.role, message.state, message.content) == (
        pb.MESSAGE_ROLE_ASSISTANT,
        pb.MESSAGE_STATE_COMPLETE,
        "  keep   my spacing\r\n",
    )
    assert not message.HasField("usage") and message.failure_reason == ""
    updated = (
        await stubs.conversation.GetConversation(
            pb.GetConversationRequest(conversation_id=conversation.id), metadata=ada.md
        )
    ).conversation
    assert updated.message_count == 1
    assert updated.last_message_time == message.create_time
    assert updated.update_time.ToDatetime() > conversation.update_time.ToDatetime()


async def test_create_message_is_idempotent(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada)
    request = pb.CreateMessageRequest(
        conversation_id=conversation.id, role=pb.MESSAGE_ROLE_USER, content="once", request_id="req-1"
    )
    responses = await asyncio.gather(*(stubs.conversation.CreateMessage(request, metadata=ada.md) for _ in range(4)))
    assert len({r.message.id for r in responses}) == 1
    got = await stubs.conversation.GetConversation(
        pb.GetConversationRequest(conversation_id=conversation.id), metadata=ada.md
    )
    assert got.conversation.message_count == 1


async def create_message(stubs: Stubs, account: Account, cid: str, content: str, request_id: str) -> pb.Message:
    request = pb.CreateMessageRequest(
        conversation_id=cid, role=pb.MESSAGE_ROLE_USER, content=content, request_id=request_id
    )
    response: pb.CreateMessageResponse = await stubs.conversation.CreateMessage(request, metadata=account.md)
    return response.message


async def test_create_message_replays_return_the_first_message(stubs: Stubs) -> None:
    ada, bob = await stubs.active_account(), await stubs.active_account("bob@example.com")
    conversation = await new_conversation(stubs, ada)
    bobs = await new_conversation(stubs, bob)
    first = await create_message(stubs, ada, conversation.id, "first", "req-2")
    # Another user's conversation is not found, request id or not, and claims nothing.
    before = await snapshot(stubs.app)
    await expect_error(create_message(stubs, ada, bobs.id, "elsewhere", "req-3"), NOT_FOUND, "CONVERSATION_NOT_FOUND")
    assert await snapshot(stubs.app) == before
    # A replay returns the first message as it was created, whatever it now says.
    again = await create_message(stubs, ada, conversation.id, "changed", "req-2")
    assert again == first
    # The same request id is another user's own.
    assert (await create_message(stubs, bob, bobs.id, "bob's", "req-2")).content == "bob's"
    # The request id that found no conversation was not claimed: it creates in Ada's own.
    created = await create_message(stubs, ada, conversation.id, "mine", "req-3")
    assert created.content == "mine"
    got = await stubs.conversation.GetConversation(
        pb.GetConversationRequest(conversation_id=conversation.id), metadata=ada.md
    )
    assert got.conversation.message_count == 2
    assert got.conversation.last_message_time == created.create_time


async def test_a_batch_looks_up_each_request_id_once_even_in_a_plan_made_on_empty_tables(
    stubs: Stubs, database_url: str
) -> None:
    """CreateMessage's batch statement finds a replayed message through the
    key's and the message's primary keys, once per request id, whatever the
    planner knows of the tables. asyncpg keeps its statements prepared, and
    PostgreSQL settles on a generic plan: made on a new database's near-empty
    tables, a join to the message was planned as a hash of every stored
    message (32 ms a batch at 6,000 messages), and a join to the caller's
    conversations looked each request id up once per conversation of the
    caller (896 lookups for a batch of 14 of a user with 64)."""
    ada = await stubs.active_account()
    cids = [(await new_conversation(stubs, ada)).id for _ in range(8)]
    await create_message(stubs, ada, cids[0], "first", "req-plan")
    connection = await asyncpg.connect(asyncpg_dsn(database_url), server_settings=schema_settings(DEFAULT_DB_SCHEMA))
    try:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE create_messages AS {conversation_sql.CREATE_MESSAGES}")
        # A replay of req-plan and a message with a new request id, in another conversation.
        batch = (
            f"ARRAY['{cids[0]}', '{cids[1]}']::uuid[], ARRAY['{ada.user.id}', '{ada.user.id}']::uuid[], "
            f"ARRAY['{uuid.uuid4()}', '{uuid.uuid4()}']::uuid[], ARRAY['user', 'user']::message_role[], "
            "ARRAY['again', 'new'], ARRAY[now(), now()], ARRAY['req-plan', 'req-new']"
        )
        # EXPLAIN ANALYZE runs the statement: in a transaction rolled back, so it changes nothing.
        transaction = connection.transaction()
        await transaction.start()
        plan = await connection.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE create_messages({batch})")
        await transaction.rollback()
    finally:
        await connection.close()
    lines = [row[0] for row in plan]
    text = "\n".join(lines)
    assert "Index Scan using pk_messages on messages" in text, text
    assert "Seq Scan on messages" not in text, text
    lookups = [re.search(r"loops=(\d+)\)", line) for line in lines if "Index Scan using pk_idempotency_keys" in line]
    assert lookups, text
    assert all(loops is None or int(loops[1]) <= 2 for loops in lookups), text  # never executed, or once a row


async def test_the_batch_statement_is_planned_once_per_connection(stubs: Stubs) -> None:
    """CreateMessage's batches keep one generic plan per connection. Left to
    choose, PostgreSQL made a plan of its own for every batch smaller than
    ten messages, which took longer than running it."""
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    for k in range(8):  # one at a time: each a batch of one, on the pool's newest idle connection
        await add_message(stubs, ada, cid, f"message {k}")
    plans = await stubs.app.database.fetch(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        conversation_sql.CREATE_MESSAGES,
        into=tuple,
    )
    [(generic, custom)] = plans  # the server's earlier calls may have used the connection too
    assert custom == 0 and generic >= 8, plans


async def test_a_replay_after_the_message_was_cleared_is_not_found_and_creates_nothing(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    await create_message(stubs, ada, cid, "first", "req-1")
    await stubs.conversation.ClearMessages(pb.ClearMessagesRequest(conversation_id=cid), metadata=ada.md)
    before = await snapshot(stubs.app)
    details = await expect_error(create_message(stubs, ada, cid, "first", "req-1"), NOT_FOUND, "MESSAGE_NOT_FOUND")
    assert "was deleted since" in details.message and "new request_id" in details.message
    assert await snapshot(stubs.app) == before


async def test_a_replay_answers_while_a_long_write_holds_its_conversation(stubs: Stubs, database_url: str) -> None:
    """A replay whose first call committed changes nothing, so it locks
    nothing: a retry answers at once even while its conversation is busy."""
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    first = await create_message(stubs, ada, cid, "first", "req-busy")
    connection = await asyncpg.connect(asyncpg_dsn(database_url), server_settings=schema_settings(DEFAULT_DB_SCHEMA))
    try:
        async with connection.transaction():
            await connection.execute("SELECT FROM conversations WHERE id = $1 FOR UPDATE", uuid.UUID(cid))
            again = await asyncio.wait_for(create_message(stubs, ada, cid, "first", "req-busy"), timeout=5)
    finally:
        await connection.close()
    assert again == first


async def test_a_message_waiting_for_a_locked_conversation_holds_back_no_other_conversation(
    stubs: Stubs, database_url: str
) -> None:
    """CreateMessage's batches go one at a time while they keep pace; one
    stuck on a conversation's row lock (held by a long write) lets the next
    start beside it instead of holding every conversation's messages back."""
    ada = await stubs.active_account()
    locked = (await new_conversation(stubs, ada)).id
    free = (await new_conversation(stubs, ada)).id
    connection = await asyncpg.connect(asyncpg_dsn(database_url), server_settings=schema_settings(DEFAULT_DB_SCHEMA))
    try:
        async with connection.transaction():
            await connection.execute("SELECT FROM conversations WHERE id = $1 FOR UPDATE", uuid.UUID(locked))
            waiting = asyncio.create_task(add_message(stubs, ada, locked, "waits for the lock"))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert (await asyncio.wait_for(add_message(stubs, ada, free, "goes"), timeout=5)).content == "goes"
        assert (await asyncio.wait_for(waiting, timeout=5)).content == "waits for the lock"
    finally:
        await connection.close()


async def test_concurrent_messages_are_all_counted(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada)
    await asyncio.gather(*(add_message(stubs, ada, conversation.id, f"message {i}") for i in range(20)))
    got = await stubs.conversation.GetConversation(
        pb.GetConversationRequest(conversation_id=conversation.id), metadata=ada.md
    )
    assert got.conversation.message_count == 20


async def test_a_burst_of_creates_leaves_each_conversation_one_chain_and_fails_only_the_foreign_one(
    stubs: Stubs,
) -> None:
    """Concurrent creates go to the database in batches (one message per
    conversation each): every conversation still gets a single chain, each
    message the child of the one before, and a bad call fails alone."""
    ada, bob = await stubs.active_account(), await stubs.active_account("bob@example.com")
    conversations = [(await new_conversation(stubs, ada)).id for _ in range(8)]
    bobs = (await new_conversation(stubs, bob)).id
    creates = [add_message(stubs, ada, cid, f"{cid} {n}") for n in range(5) for cid in conversations]
    foreign = create_message(stubs, ada, bobs, "elsewhere", "req-burst")
    retried = [create_message(stubs, ada, conversations[0], "once", "req-once") for _ in range(3)]
    *created, refused, once_a, once_b, once_c = await asyncio.gather(
        *creates, foreign, *retried, return_exceptions=True
    )
    assert all(isinstance(message, pb.Message) for message in created)
    assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() == NOT_FOUND
    assert isinstance(once_a, pb.Message) and once_a == once_b == once_c
    for cid in conversations:
        listed = await stubs.conversation.ListMessages(
            pb.ListMessagesRequest(conversation_id=cid, page_size=100), metadata=ada.md
        )
        path = list(listed.messages)
        expected = 6 if cid == conversations[0] else 5
        assert len(path) == expected
        assert [m.parent_id for m in path[1:]] == [m.id for m in path[:-1]]
        assert sorted(m.content for m in path if m.content != "once") == [f"{cid} {n}" for n in range(5)]
        got = await stubs.conversation.GetConversation(pb.GetConversationRequest(conversation_id=cid), metadata=ada.md)
        assert (got.conversation.message_count, got.conversation.active_message_id) == (expected, path[-1].id)
    bobs_messages = await stubs.conversation.ListMessages(pb.ListMessagesRequest(conversation_id=bobs), metadata=bob.md)
    assert not bobs_messages.messages
    # The refused call claimed nothing: its request id creates in Ada's own conversation.
    assert (await create_message(stubs, ada, conversations[1], "mine", "req-burst")).content == "mine"


async def test_create_message_rejects_bad_input_and_changes_nothing(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    before = await snapshot(stubs.app)
    user = pb.MESSAGE_ROLE_USER
    cases = [
        (pb.CreateMessageRequest(conversation_id=cid, role=pb.MESSAGE_ROLE_UNSPECIFIED, content="hi"), "role"),
        (pb.CreateMessageRequest(conversation_id=cid, role=99, content="hi"), "role"),  # type: ignore[arg-type]
        (pb.CreateMessageRequest(conversation_id=cid, role=user, content=""), "content"),
        (pb.CreateMessageRequest(conversation_id=cid, role=user, content=" \n\t "), "content"),
        (pb.CreateMessageRequest(conversation_id=cid, role=user, content="x" * (MAX_CONTENT_LENGTH + 1)), "content"),
        (pb.CreateMessageRequest(conversation_id=cid, role=user, content="nul\x00byte"), "content"),
        (pb.CreateMessageRequest(conversation_id=cid, role=user, content="hi", request_id="\x07"), "request_id"),
    ]
    for request, field in cases:
        details = await expect_error(stubs.conversation.CreateMessage(request, metadata=ada.md), INVALID)
        assert field in details.violations, details.violations
    # Every problem of one request is reported at once.
    details = await expect_error(
        stubs.conversation.CreateMessage(pb.CreateMessageRequest(conversation_id="x"), metadata=ada.md), INVALID
    )
    assert set(details.violations) == {"conversation_id", "role", "content"}
    assert await snapshot(stubs.app) == before
    longest = await add_message(stubs, ada, cid, "y" * MAX_CONTENT_LENGTH)
    assert len(longest.content) == MAX_CONTENT_LENGTH


async def test_list_messages_oldest_first_in_pages(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    other = (await new_conversation(stubs, ada)).id
    for i in range(5):
        await add_message(stubs, ada, cid, f"m{i}", pb.MESSAGE_ROLE_USER if i % 2 == 0 else pb.MESSAGE_ROLE_ASSISTANT)
    await add_message(stubs, ada, other, "elsewhere")
    seen: list[str] = []
    token = ""
    while True:
        page = await stubs.conversation.ListMessages(
            pb.ListMessagesRequest(conversation_id=cid, page_size=2, page_token=token), metadata=ada.md
        )
        assert len(page.messages) <= 2
        seen += [m.content for m in page.messages]
        token = page.next_page_token
        if not token:
            break
        # A new message arriving between pages shows up at the end, once.
        if len(seen) == 2:
            await add_message(stubs, ada, cid, "late")
    assert seen == ["m0", "m1", "m2", "m3", "m4", "late"]
    everything = await stubs.conversation.ListMessages(pb.ListMessagesRequest(conversation_id=cid), metadata=ada.md)
    assert [m.content for m in everything.messages] == seen and not everything.next_page_token


async def test_list_messages_rejects_bad_pages(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    cid = (await new_conversation(stubs, ada)).id
    other = (await new_conversation(stubs, ada)).id
    for i in range(3):
        await add_message(stubs, ada, cid, f"m{i}")
        await add_message(stubs, ada, other, f"o{i}")
    first = await stubs.conversation.ListMessages(
        pb.ListMessagesRequest(conversation_id=cid, page_size=1), metadata=ada.md
    )
    token = first.next_page_token
    assert token
    bobs = (await new_conversation(stubs, bob)).id
    bad_requests = [
        (ada, pb.ListMessagesRequest(conversation_id=cid, page_size=-1), "page_size"),
        (ada, pb.ListMessagesRequest(conversation_id=cid, page_token=token[:-2] + "xx"), "page_token"),
        (ada, pb.ListMessagesRequest(conversation_id=cid, page_token="garbage!"), "page_token"),
        # A token of one conversation is not valid for another, nor for another user.
        (ada, pb.ListMessagesRequest(conversation_id=other, page_token=token), "page_token"),
        (bob, pb.ListMessagesRequest(conversation_id=bobs, page_token=token), "page_token"),
    ]
    for account, request, field in bad_requests:
        details = await expect_error(stubs.conversation.ListMessages(request, metadata=account.md), INVALID)
        assert field in details.violations


async def test_list_messages_pages_stop_at_the_byte_budget(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    for i in range(25):
        await add_message(stubs, ada, cid, f"{i:02d}" + "z" * (MAX_CONTENT_LENGTH - 2))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await stubs.conversation.ListMessages(
            pb.ListMessagesRequest(conversation_id=cid, page_size=200, page_token=token), metadata=ada.md
        )
        pages += 1
        seen += [m.content[:2] for m in page.messages]
        token = page.next_page_token
        if not token:
            break
    assert pages > 1
    assert seen == [f"{i:02d}" for i in range(25)]


async def test_clear_messages(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada, "Keep title")
    for text in ("a", "b", "c"):
        await add_message(stubs, ada, conversation.id, text)
    cleared = await stubs.conversation.ClearMessages(
        pb.ClearMessagesRequest(conversation_id=conversation.id), metadata=ada.md
    )
    assert cleared.deleted_count == 3
    assert (cleared.conversation.message_count, cleared.conversation.title) == (0, "Keep title")
    assert not cleared.conversation.HasField("last_message_time")
    listed = await stubs.conversation.ListMessages(
        pb.ListMessagesRequest(conversation_id=conversation.id), metadata=ada.md
    )
    assert not listed.messages
    again = await stubs.conversation.ClearMessages(
        pb.ClearMessagesRequest(conversation_id=conversation.id), metadata=ada.md
    )
    assert again.deleted_count == 0


# -- GetMessagesForAgent --------------------------------------------------------


async def _history(
    stubs: Stubs, account: Account, cid: str, max_messages: int = 0, max_chars: int = 0
) -> list[tuple[int, str]]:
    response = await stubs.conversation.GetMessagesForAgent(
        pb.GetMessagesForAgentRequest(conversation_id=cid, max_messages=max_messages, max_chars=max_chars),
        metadata=account.md,
    )
    return [(m.role, m.content) for m in response.messages]


async def test_messages_for_agent_keep_the_system_prompt_and_trim_oldest_first(stubs: Stubs) -> None:
    ada = await stubs.admin_account()  # who may see the system prompt
    cid = (await new_conversation(stubs, ada)).id
    system = (pb.MESSAGE_ROLE_SYSTEM, "You are a helpful, concise assistant.")
    user, assistant = pb.MESSAGE_ROLE_USER, pb.MESSAGE_ROLE_ASSISTANT
    assert await _history(stubs, ada, cid) == [system]
    contents = ["aaaa", "bbbb", "cccc", "dddd", "eeee"]
    for i, text in enumerate(contents):
        await add_message(stubs, ada, cid, text, user if i % 2 == 0 else assistant)
    # A failed generation that produced nothing is not history (inserted on the active path).
    await sql(
        stubs.app,
        "WITH added AS (INSERT INTO messages (id, conversation_id, role, content, state, failure_reason,"
        " prompt_tokens, completion_tokens, parent_id) SELECT :id, :cid, 'assistant', '', 'failed', 'boom', 0, 0,"
        " active_message_id FROM conversations WHERE id = :cid RETURNING id)"
        " UPDATE conversations SET active_message_id = (SELECT id FROM added) WHERE id = :cid",
        id=uuid.uuid4(),
        cid=cid,
    )
    everything = [system, (user, "aaaa"), (assistant, "bbbb"), (user, "cccc"), (assistant, "dddd"), (user, "eeee")]
    assert await _history(stubs, ada, cid) == everything
    assert await _history(stubs, ada, cid, max_messages=2) == [system, (assistant, "dddd"), (user, "eeee")]
    # 12 characters fit three messages of 4; 11 only two (whole messages only).
    assert await _history(stubs, ada, cid, max_chars=12) == [system, *everything[3:]]
    assert await _history(stubs, ada, cid, max_chars=11) == [system, *everything[4:]]
    assert await _history(stubs, ada, cid, max_messages=3, max_chars=8) == [system, *everything[4:]]
    # The newest message is always kept, cut to its last max_chars characters.
    await add_message(stubs, ada, cid, "0123456789")
    assert await _history(stubs, ada, cid, max_chars=3) == [system, (user, "789")]
    # No system prompt: no SYSTEM entry.
    await sql(stubs.app, "UPDATE agents SET system_prompt = '' WHERE slug = 'assistant'")
    assert await _history(stubs, ada, cid, max_messages=1) == [(user, "0123456789")]


async def test_messages_for_agent_rejects_negative_budgets(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    details = await expect_error(
        stubs.conversation.GetMessagesForAgent(
            pb.GetMessagesForAgentRequest(conversation_id=cid, max_messages=-1, max_chars=-5), metadata=ada.md
        ),
        INVALID,
    )
    assert set(details.violations) == {"max_messages", "max_chars"}


async def test_messages_for_agent_default_budget_is_fifty_messages(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada)).id
    # 600 messages on one path.
    await sql(
        stubs.app,
        "WITH new AS MATERIALIZED (SELECT gen_random_uuid() AS id, n FROM generate_series(1, 600) AS n),"
        " added AS (INSERT INTO messages (id, conversation_id, role, content, state, failure_reason, prompt_tokens,"
        " completion_tokens, parent_id) SELECT id, :cid, 'user', 'm' || n, 'complete', '', 0, 0,"
        " lag(id) OVER (ORDER BY n) FROM new ORDER BY n)"
        " UPDATE conversations SET active_message_id = (SELECT id FROM new WHERE n = 600) WHERE id = :cid",
        cid=cid,
    )
    default = await _history(stubs, ada, cid)
    assert len(default) == 50 and default[-1][1] == "m600" and default[0][1] == "m551"
    assert len(await _history(stubs, ada, cid, max_messages=500)) == 500
    # Asking for more than the maximum is refused, not silently cut.
    details = await expect_error(
        stubs.conversation.GetMessagesForAgent(
            pb.GetMessagesForAgentRequest(conversation_id=cid, max_messages=501, max_chars=500_001), metadata=ada.md
        ),
        INVALID,
    )
    assert set(details.violations) == {"max_messages", "max_chars"}


async def test_messages_for_agent_show_the_system_prompt_to_admins_only(stubs: Stubs) -> None:
    """As GetAgent: a plain user sees the history without the agent's system prompt."""
    prompt = (pb.MESSAGE_ROLE_SYSTEM, "You are a helpful, concise assistant.")
    history = (pb.MESSAGE_ROLE_USER, "hello")
    for account, expected in [
        (await stubs.active_account(), [history]),
        (await stubs.admin_account(), [prompt, history]),
    ]:
        cid = (await new_conversation(stubs, account)).id
        await add_message(stubs, account, cid, "hello")
        assert await _history(stubs, account, cid) == expected
        assert await _history(stubs, account, cid, max_messages=1) == expected


# -- GenerateTitle --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("how do I bake sourdough bread at home? I tried twice.", "How do I bake sourdough bread at home"),
        ("  **Help** me   with _this_  ", "Help me with this"),
        ("# Packing list\n- socks\n- tent", "Packing list"),
        ('"Quoted question"', "Quoted question"),
        ("don't stop believing", "Don't stop believing"),
        ("```python\nprint(1)\n```\nwhy does this fail", "Why does this fail"),
        ("one two three four five six seven eight nine ten", "One two three four five six seven eight"),
        ("Check [the docs](https://example.com/x) please.", "Check the docs please"),
        ("> quoted reply\nmore", "Quoted reply"),
        ("What is 3.14 rounded?", "What is 3.14 rounded"),
        ("Hello, world...", "Hello, world"),
        (
            "internationalization localization globalization accessibility interoperability",
            "Internationalization localization globalization",
        ),
        ("x" * 100, "X" + "x" * 59),
        ("élan vital!", "Élan vital"),
        ("", DEFAULT_TITLE),
        ("?!... ---", DEFAULT_TITLE),
        ("```\nonly code\n```", DEFAULT_TITLE),
    ],
)
def test_heuristic_title(text: str, title: str) -> None:
    assert heuristic_title(text) == title
    assert len(heuristic_title(text)) <= 60


async def _generate_title(stubs: Stubs, account: Account, cid: str) -> pb.Conversation:
    response: pb.GenerateTitleResponse = await stubs.conversation.GenerateTitle(
        pb.GenerateTitleRequest(conversation_id=cid), metadata=account.md
    )
    return response.conversation


async def test_generate_title_heuristic_from_the_first_user_message(stubs: Stubs) -> None:
    await sql(stubs.app, "UPDATE agents SET title_generation = false WHERE slug = 'assistant'")
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada)
    await add_message(stubs, ada, conversation.id, "Be terse.", pb.MESSAGE_ROLE_SYSTEM)
    await add_message(stubs, ada, conversation.id, "**Plan** a 3-day trip to Lisbon! Budget is small.")
    await add_message(stubs, ada, conversation.id, "Later question about something else")
    titled = await _generate_title(stubs, ada, conversation.id)
    assert titled.title == "Plan a 3-day trip to Lisbon"
    assert titled.update_time.ToDatetime() > conversation.update_time.ToDatetime()
    stored = await stubs.conversation.GetConversation(
        pb.GetConversationRequest(conversation_id=conversation.id), metadata=ada.md
    )
    assert stored.conversation.title == titled.title


async def test_generate_title_asks_an_agent_that_supports_it(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada)  # "assistant": title_generation, echo provider
    await add_message(stubs, ada, conversation.id, "how do I bake sourdough bread at home? it keeps failing")
    titled = await _generate_title(stubs, ada, conversation.id)
    # The echo provider answers "Echo: <last user message>"; the answer is cleaned like a heuristic title.
    assert titled.title == "Echo: how do I bake sourdough bread at"


async def test_generate_title_falls_back_to_the_heuristic(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    failing = await new_conversation(stubs, ada)
    # "/fail" makes the echo provider raise ProviderError after a few words.
    await add_message(stubs, ada, failing.id, "/fail please, then title me")
    assert (await _generate_title(stubs, ada, failing.id)).title == heuristic_title("/fail please, then title me")
    # An agent the caller may no longer use is not asked.
    other = await new_conversation(stubs, ada)
    await add_message(stubs, ada, other.id, "Disabled agents do not answer")
    await sql(stubs.app, "UPDATE agents SET enabled = false WHERE slug = 'assistant'")
    assert (await _generate_title(stubs, ada, other.id)).title == "Disabled agents do not answer"


async def test_generate_title_needs_a_user_message(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    conversation = await new_conversation(stubs, ada, "Untouched")
    await add_message(stubs, ada, conversation.id, "assistant speaks first", pb.MESSAGE_ROLE_ASSISTANT)
    before = await snapshot(stubs.app)
    await expect_error(
        stubs.conversation.GenerateTitle(pb.GenerateTitleRequest(conversation_id=conversation.id), metadata=ada.md),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_USER_MESSAGE",
    )
    assert await snapshot(stubs.app) == before


# -- CleanupEmptyConversations --------------------------------------------------


async def _age(stubs: Stubs, conversation_id: str, hours: float) -> None:
    await sql(
        stubs.app,
        "UPDATE conversations SET create_time = now() - make_interval(secs => :secs) WHERE id = :id",
        secs=hours * 3600,
        id=uuid.UUID(conversation_id),
    )


async def _cleanup(stubs: Stubs, account: Account, older_than: timedelta | None = None) -> int:
    request = pb.CleanupEmptyConversationsRequest()
    if older_than is not None:
        request.older_than.FromTimedelta(older_than)
    response: pb.CleanupEmptyConversationsResponse = await stubs.conversation.CleanupEmptyConversations(
        request, metadata=account.md
    )
    return response.deleted_count


async def test_cleanup_deletes_only_the_callers_old_empty_conversations(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    old_empty = await new_conversation(stubs, ada)
    recent_empty = await new_conversation(stubs, ada)
    old_with_message = await new_conversation(stubs, ada)
    bobs_old_empty = await new_conversation(stubs, bob)
    await add_message(stubs, ada, old_with_message.id, "keep me")
    for conversation in (old_empty, old_with_message, bobs_old_empty):
        await _age(stubs, conversation.id, 25)
    await _age(stubs, recent_empty.id, 2)
    assert await _cleanup(stubs, ada) == 1  # default: older than 24 hours
    remaining = {row[0] for row in await sql(stubs.app, "SELECT id::text FROM conversations")}
    assert remaining == {recent_empty.id, old_with_message.id, bobs_old_empty.id}
    assert await _cleanup(stubs, ada, timedelta(hours=1)) == 1
    assert await _cleanup(stubs, ada, timedelta(days=365 * 9000)) == 0  # older than the calendar
    # The admin variant (domain call) covers every user.
    assert await stubs.app.conversations.cleanup_empty_conversations(None, timedelta(hours=24)) == 1
    assert {row[0] for row in await sql(stubs.app, "SELECT id::text FROM conversations")} == {old_with_message.id}


async def test_cleanup_rejects_a_negative_age(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    await _age(stubs, (await new_conversation(stubs, ada)).id, 48)
    before = await snapshot(stubs.app)
    request = pb.CleanupEmptyConversationsRequest(older_than=Duration(seconds=-1))
    details = await expect_error(stubs.conversation.CleanupEmptyConversations(request, metadata=ada.md), INVALID)
    assert "older_than" in details.violations
    assert await snapshot(stubs.app) == before


# -- events for watchers --------------------------------------------------------


async def test_changes_are_published_for_watchers(stubs: Stubs) -> None:
    app = stubs.app
    published: list[Event] = []
    service = ConversationService(app.database, Paginator("secret"), app.access, app.registry, publish=published.append)
    ada = await stubs.active_account()
    caller = Caller(uuid.UUID(ada.user.id), uuid.uuid4(), Role.USER, UserState.ACTIVE, premium=False)
    conversation = await service.create_conversation(caller, await agent_id(app), "", "", {})
    cid = conversation.id
    assert published == []  # nobody can be watching a conversation that did not exist
    message = await service.create_message(caller, str(cid), MessageRole.USER, "hello", "req-1")
    # A replay changes nothing, so it tells watchers nothing.
    assert await service.create_message(caller, str(cid), MessageRole.USER, "hello", "req-1") == message
    await service.update_conversation(caller, str(cid), ConversationChanges(pinned=True), ["pinned"])
    await service.generate_title(caller, str(cid))
    await service.clear_messages(caller, str(cid))
    await service.delete_conversation(caller, str(cid))
    assert published == [
        MessageCreated(cid, message.id),
        ConversationChanged(cid),
        ConversationChanged(cid),
        ConversationChanged(cid),
        ConversationChanged(cid),
        ConversationDeleted(cid),
    ]
    published.clear()
    empty = await service.create_conversation(caller, await agent_id(app), "", "", {})
    assert await service.cleanup_empty_conversations(caller.user_id, timedelta(0)) == 1
    assert published == [ConversationDeleted(empty.id)]
    # Bad input publishes nothing.
    with pytest.raises(InvalidArgument):
        await service.update_conversation(caller, str(empty.id), ConversationChanges(), ["nope"])
    assert published == [ConversationDeleted(empty.id)]
