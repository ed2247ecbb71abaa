"""ListConversations `query`: full-text search over titles and message contents."""

from __future__ import annotations

import asyncio
from typing import Unpack

import grpc
import pytest

from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2 as pb
from tests.helpers.accounts import Account
from tests.helpers.agents import create_model_agent
from tests.helpers.chat import read_rest, stored
from tests.helpers.conversations import ListFilters, add_message, new_conversation
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error
from tests.helpers.fake_openai import FakeOpenAI
from tests.helpers.stubs import Stubs


async def _search(stubs: Stubs, account: Account, query: str, **filters: Unpack[ListFilters]) -> list[str]:
    response: pb.ListConversationsResponse = await stubs.conversation.ListConversations(
        pb.ListConversationsRequest(query=query, **filters),
        metadata=account.md,
    )
    return [c.title for c in response.conversations]


@pytest.fixture
async def library(stubs: Stubs) -> tuple[Account, Account]:
    """Ada's conversations (titles and messages to search) and Bob's look-alike."""
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    await new_conversation(stubs, ada, "Sourdough starter")
    lisbon = await new_conversation(stubs, ada, "Holiday")
    await add_message(stubs, ada, lisbon.id, "Three days in Lisbon: trams, pastéis de nata and Fado.")
    await add_message(stubs, ada, lisbon.id, "Mail the itinerary to ada@example.com", pb.MESSAGE_ROLE_ASSISTANT)
    code = await new_conversation(stubs, ada, "Refactoring")
    await add_message(stubs, ada, code.id, "Why does /usr/bin/python3 crash with a segfault?")
    bobs = await new_conversation(stubs, bob, "Bob's sourdough")
    await add_message(stubs, bob, bobs.id, "Lisbon trip for Bob")
    return ada, bob


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ("sourdough", ["Sourdough starter"]),  # title
        ("SOURDOUGH", ["Sourdough starter"]),  # case-insensitive
        ("sour", ["Sourdough starter"]),  # prefix of a word
        ("lisbon", ["Holiday"]),  # message text
        ("lisb fado", ["Holiday"]),  # every word must match
        ("lisbon sourdough", []),
        ("pastéis", ["Holiday"]),  # non-ASCII
        ("ada@example.com", ["Holiday"]),  # emails are one token, like in the index
        ("/usr/bin/python3", ["Refactoring"]),
        ("segfault?!", ["Refactoring"]),  # punctuation around words is ignored
        ("nothing-matches-this", []),
    ],
)
async def test_search_finds_titles_and_messages(
    stubs: Stubs, library: tuple[Account, Account], query: str, titles: list[str]
) -> None:
    ada, _ = library
    assert sorted(await _search(stubs, ada, query)) == sorted(titles)


async def test_an_answer_is_found_once_it_has_ended_not_while_it_streams(stubs: Stubs) -> None:
    ada = await stubs.active_account()
    async with FakeOpenAI(words=["Zanzibar", "spice", "markets"], token_delay=0.4) as fake:
        await create_model_agent(stubs, fake.base_url)
        cid = (await new_conversation(stubs, ada, "Travel", slug="remote")).id
        request = chat_pb2.SendMessageRequest(conversation_id=cid, content="Where should I go?")
        call = stubs.chat.SendMessage(request, metadata=ada.md)
        answer_id = (await call.read()).accepted.assistant_message_id
        async with asyncio.timeout(5):  # the first word is stored (every persist interval), the rest to come
            while "Zanzibar" not in (await stored(stubs, answer_id)).content:
                await asyncio.sleep(0.02)
        assert await _search(stubs, ada, "zanzibar") == []
        assert (await read_rest(call))[-1].WhichOneof("event") == "completed"
    assert await _search(stubs, ada, "zanzibar") == ["Travel"]


async def test_a_long_message_is_found_and_its_vector_is_stored_uncompressed(stubs: Stubs) -> None:
    """A 200-word message's search vector is over the TOAST threshold: stored out
    of line as it is (migration 0014), never run through pglz, and still searched."""
    ada = await stubs.active_account()
    cid = (await new_conversation(stubs, ada, "Notes")).id
    words = " ".join(f"token{i}" for i in range(199))
    message = await add_message(stubs, ada, cid, f"{words} quetzal")
    assert await _search(stubs, ada, "quetzal token7") == ["Notes"]
    assert await sql(
        stubs.app,
        "SELECT pg_column_compression(content_search), pg_column_size(content_search) > 2000 "
        "FROM messages WHERE id = :id",
        id=message.id,
    ) == [(None, True)]


async def test_search_never_shows_other_users_conversations(stubs: Stubs, library: tuple[Account, Account]) -> None:
    _, bob = library
    assert await _search(stubs, bob, "sourdough") == ["Bob's sourdough"]
    assert await _search(stubs, bob, "lisbon") == ["Bob's sourdough"]
    assert await _search(stubs, bob, "refactoring") == []


async def test_search_combines_with_filters(stubs: Stubs, library: tuple[Account, Account]) -> None:
    ada, _ = library
    assert await _search(stubs, ada, "lisbon", archived=False) == ["Holiday"]
    assert await _search(stubs, ada, "lisbon", archived=True) == []
    assert await _search(stubs, ada, "lisbon", pinned=True) == []


@pytest.mark.parametrize(
    "query",
    ["!!!", "...", "&", "|", ":*", "!(", "'", "\\", "a & b | !c:* <-> (d", "'; DROP TABLE conversations; --", "🙂"],
)
async def test_search_syntax_in_user_text_is_harmless(
    stubs: Stubs, library: tuple[Account, Account], query: str
) -> None:
    ada, _ = library
    # Only words count: punctuation-only queries match nothing, operators are never parsed.
    titles = await _search(stubs, ada, query)
    assert set(titles) <= {"Sourdough starter", "Holiday", "Refactoring"}
    assert len(await _search(stubs, ada, "")) == 3


async def test_search_rejects_long_or_control_character_queries(stubs: Stubs, library: tuple[Account, Account]) -> None:
    ada, _ = library
    before = await snapshot(stubs.app)
    for query in ("x" * 201, "bad\x00query", "bell\x07"):
        details = await expect_error(
            stubs.conversation.ListConversations(pb.ListConversationsRequest(query=query), metadata=ada.md),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "query" in details.violations
    assert await _search(stubs, ada, "  " + "sourdough " * 18) == ["Sourdough starter"]  # stripped, under 200
    assert await snapshot(stubs.app) == before
