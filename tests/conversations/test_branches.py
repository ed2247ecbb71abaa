"""The message tree on the conversations side: parents, the active path in
ListMessages (pages included), SwitchBranch, ClearMessages, and migration 0010's
backfill of conversations stored before the tree existed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from alembic import command
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2 as pb
from parley_server.db.database import Database, asyncpg_dsn, normalise_url
from parley_server.db.migrate import alembic_config
from parley_server.settings import DEFAULT_DB_SCHEMA
from tests.helpers.accounts import Account
from tests.helpers.chat import collect, exchange
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.database import sql
from tests.helpers.errors import expect_error
from tests.helpers.stubs import Stubs


async def _page(stubs: Stubs, account: Account, cid: str, **fields: object) -> pb.ListMessagesResponse:
    response: pb.ListMessagesResponse = await stubs.conversation.ListMessages(
        pb.ListMessagesRequest(conversation_id=cid, **fields),  # type: ignore[arg-type]
        metadata=account.md,
    )
    return response


async def _all_pages(stubs: Stubs, account: Account, cid: str, **fields: object) -> list[str]:
    contents: list[str] = []
    token = ""
    while True:
        page = await _page(stubs, account, cid, page_size=2, page_token=token, **fields)
        contents += [m.content for m in page.messages]
        token = page.next_page_token
        if not token:
            return contents


async def test_create_message_chains_parents_and_moves_the_active_leaf(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    got = await stubs.conversation.GetConversation(pb.GetConversationRequest(conversation_id=cid), metadata=alice.md)
    assert got.conversation.active_message_id == ""
    a = await add_message(stubs, alice, cid, "a")
    b = await add_message(stubs, alice, cid, "b", pb.MESSAGE_ROLE_ASSISTANT)
    assert (a.parent_id, b.parent_id) == ("", a.id)
    got = await stubs.conversation.GetConversation(pb.GetConversationRequest(conversation_id=cid), metadata=alice.md)
    assert got.conversation.active_message_id == b.id


async def test_list_messages_pages_through_the_active_path_or_every_branch(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    await exchange(stubs, alice, cid, "q1")
    q2 = await exchange(stubs, alice, cid, "q2")
    await collect(
        stubs.chat.EditMessage(
            chat_pb2.EditMessageRequest(message_id=q2.user_message.id, content="q2b"), metadata=alice.md
        )
    )
    assert await _all_pages(stubs, alice, cid) == ["q1", "Echo: q1", "q2b", "Echo: q2b"]
    everything = await _all_pages(stubs, alice, cid, all_branches=True)
    assert everything == ["q1", "Echo: q1", "q2", "Echo: q2", "q2b", "Echo: q2b"]
    await stubs.conversation.SwitchBranch(pb.SwitchBranchRequest(message_id=q2.user_message.id), metadata=alice.md)
    assert await _all_pages(stubs, alice, cid) == ["q1", "Echo: q1", "q2", "Echo: q2"]
    path = (await _page(stubs, alice, cid)).messages
    assert [(m.sibling_count, m.sibling_index) for m in path] == [(1, 0), (1, 0), (2, 0), (1, 0)]
    # A token of one listing is not a token of the other.
    token = (await _page(stubs, alice, cid, page_size=1)).next_page_token
    details = await expect_error(
        _page(stubs, alice, cid, page_token=token, all_branches=True), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "page_token" in details.violations


async def test_roots_of_a_conversation_are_siblings(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await add_message(stubs, alice, cid, "first")
    other = await new_conversation(stubs, alice)
    await add_message(stubs, alice, other.id, "another conversation's root")
    # A second root: switching to nothing is not possible, so it is inserted as an import would.
    await sql(
        stubs.app,
        "INSERT INTO messages (id, conversation_id, role, content, state, failure_reason, prompt_tokens,"
        " completion_tokens) VALUES (:id, :cid, 'user', 'second', 'complete', '', 0, 0)",
        id=uuid.uuid4(),
        cid=cid,
    )
    path = (await _page(stubs, alice, cid)).messages
    assert [(m.id, m.sibling_count, m.sibling_index) for m in path] == [(first.id, 2, 0)]


async def test_clear_messages_resets_the_active_leaf(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    await add_message(stubs, alice, cid, "a")
    cleared = await stubs.conversation.ClearMessages(pb.ClearMessagesRequest(conversation_id=cid), metadata=alice.md)
    assert cleared.conversation.active_message_id == ""
    again = await add_message(stubs, alice, cid, "fresh start")
    assert again.parent_id == ""
    assert [m.content for m in (await _page(stubs, alice, cid)).messages] == ["fresh start"]


async def test_an_empty_or_foreign_conversation_lists_nothing_or_is_not_found(stubs: Stubs, alice: Account) -> None:
    cid = (await new_conversation(stubs, alice)).id
    assert list((await _page(stubs, alice, cid)).messages) == []
    mallory = await stubs.active_account("mallory@example.com")
    await expect_error(_page(stubs, mallory, cid), grpc.StatusCode.NOT_FOUND, "CONVERSATION_NOT_FOUND")


# -- migration 0010 -----------------------------------------------------------


@pytest.fixture
async def database_at_0009(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database on the test server, migrated up to 0009 (before the message tree)."""
    name = f"parley_tree_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_url(database_url)).set(database=name).render_as_string(hide_password=False)
    database = Database(url, schema=DEFAULT_DB_SCHEMA)
    try:
        await _alembic(database, "0009_feedback")
        yield database
    finally:
        await database.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _alembic(database: Database, revision: str) -> None:
    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection, database.schema), revision)

    async with database.engine.begin() as conn:
        await conn.run_sync(upgrade)


async def test_migration_turns_a_linear_conversation_into_one_path(database_at_0009: Database) -> None:
    user, conversation, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(4)]
    async with database_at_0009.engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(
            "INSERT INTO users (id, email, password_hash, display_name, role, state, premium, email_verified)"
            " VALUES ($1, 'old@example.com', 'x', 'Old', 'user', 'active', false, true)",
            user,
        )
        agent = await raw.fetchval("SELECT id FROM agents WHERE slug = 'assistant'")
        for cid in (conversation, empty):
            await raw.execute(
                "INSERT INTO conversations (id, user_id, agent_id, title, archived, pinned, message_count)"
                " VALUES ($1, $2, $3, '', false, false, 0)",
                cid,
                user,
                agent,
            )
        # Two exchanges as SendMessage stored them: answers linked to their question by reply_to.
        for n, (mid, role) in enumerate(zip(ids, ["user", "assistant", "user", "assistant"], strict=True)):
            await raw.execute(
                "INSERT INTO messages (id, conversation_id, role, content, state, failure_reason, prompt_tokens,"
                " completion_tokens, reply_to) VALUES ($1, $2, $3, $4, 'complete', '', 0, 0, $5)",
                mid,
                conversation,
                role,
                f"m{n}",
                ids[n - 1] if role == "assistant" else None,
            )
    await _alembic(database_at_0009, "head")
    parents = await database_at_0009.fetch(
        "SELECT id, parent_id FROM messages ORDER BY seq", into=lambda r: (r[0], r[1])
    )
    assert parents == [(ids[0], None), (ids[1], ids[0]), (ids[2], ids[1]), (ids[3], ids[2])]
    active = await database_at_0009.fetch(
        "SELECT id, active_message_id FROM conversations", into=lambda r: (r[0], r[1])
    )
    assert dict(active) == {conversation: ids[3], empty: None}
