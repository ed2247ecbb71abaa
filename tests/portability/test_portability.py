"""PortabilityService over real gRPC and PostgreSQL: exports keep the tree, states and usage,
imports are idempotent and all-or-nothing per conversation, bad lines are named, delete-all
tells watchers on another replica, the account export has no secrets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import update

from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley.conversation.v1 import conversation_pb2
from parley.feedback.v1 import feedback_pb2
from parley.portability.v1 import portability_pb2 as pb
from parley_server.db.models import Message, MessageState
from tests.helpers.accounts import Account
from tests.helpers.api_keys import user_key
from tests.helpers.chat import collect, kinds, read_rest
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.database import snapshot, sql
from tests.helpers.errors import expect_error
from tests.helpers.in_process import TEST_JWT_SECRET
from tests.helpers.served import ServerProcess
from tests.helpers.stubs import Stubs

MiB = 1024 * 1024
ASSISTANT = conversation_pb2.MESSAGE_ROLE_ASSISTANT


def records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


async def joined(stream: Any) -> bytes:
    return b"".join(response.chunk.data for response in await collect(stream))


async def export(stubs: Stubs, account: Account) -> bytes:
    return await joined(stubs.portability.ExportConversations(pb.ExportConversationsRequest(), metadata=account.md))


async def chunked(data: Iterable[bytes]) -> AsyncIterator[pb.ImportConversationsRequest]:
    for piece in data:
        yield pb.ImportConversationsRequest(data=piece)


def pieces(data: bytes, size: int = 1000) -> list[bytes]:
    """data cut every `size` bytes: lines span chunks."""
    return [data[i : i + size] for i in range(0, len(data), size)]


async def import_file(stubs: Stubs, account: Account, data: Iterable[bytes]) -> pb.ImportConversationsResponse:
    response: pb.ImportConversationsResponse = await stubs.portability.ImportConversations(
        chunked(data), metadata=account.md
    )
    return response


def line(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode() + b"\n"


def conversation(source_id: str, *messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "format": "parley.conversations.v1",
        "id": source_id,
        "agent_slug": "assistant",
        "title": f"Conversation {source_id}",
        "messages": list(messages),
        **fields,
    }


def message(source_id: str, parent: str | None, role: str = "user", **fields: Any) -> dict[str, Any]:
    return {"id": source_id, "parent_id": parent, "role": role, "content": f"text {source_id}", "state": "complete"} | (
        fields
    )


def shape(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its ids, with parents as positions: equal for a conversation and its import."""
    position = {m["id"]: n for n, m in enumerate(record["messages"])}
    messages = [
        {k: v for k, v in m.items() if k != "id"} | {"parent_id": position.get(m["parent_id"])}
        for m in record["messages"]
    ]
    active = position.get(record["active_message_id"])
    return {k: v for k, v in record.items() if k not in {"id", "messages", "active_message_id"}} | {
        "messages": messages,
        "active": active,
    }


async def conversation_count(stubs: Stubs, account: Account) -> int:
    rows = await sql(stubs.app, "SELECT count(*) FROM conversations WHERE user_id = :u", u=uuid.UUID(account.user.id))
    return int(rows[0][0])


async def test_export_then_import_keeps_the_tree_states_and_usage_and_a_second_import_creates_nothing(
    stubs: Stubs, alice: Account
) -> None:
    chatted = await new_conversation(stubs, alice, title="Chatted")
    await collect(
        stubs.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=chatted.id, content="Hello there"), metadata=alice.md
        )
    )
    await stubs.conversation.UpdateConversation(
        conversation_pb2.UpdateConversationRequest(
            conversation=conversation_pb2.Conversation(
                id=chatted.id, archived=True, pinned=True, metadata={"ticket": "T-123", "crm": "acme"}
            ),
            update_mask={"paths": ["archived", "pinned", "metadata"]},
        ),
        metadata=alice.md,
    )
    written = await new_conversation(stubs, alice, title="Written")
    await add_message(stubs, alice, written.id, "Question?")
    failed = await add_message(stubs, alice, written.id, "Half an ans", role=ASSISTANT)
    async with stubs.app.database.transaction() as db:
        await db.execute(
            update(Message)
            .where(Message.id == uuid.UUID(failed.id))
            .values(state=MessageState.FAILED, failure_reason="provider error", prompt_tokens=7, completion_tokens=3)
        )

    exported = records(await export(stubs, alice))
    assert [r["title"] for r in exported] == ["Chatted", "Written"]
    first, second = exported
    assert all(r["format"] == "parley.conversations.v1" for r in exported)
    assert (first["archived"], first["pinned"], first["agent_slug"]) == (True, True, "assistant")
    assert (first["metadata"], second["metadata"]) == ({"ticket": "T-123", "crm": "acme"}, {})
    assert first["agent_name"] and first["agent_id"]
    question, answer = first["messages"]
    assert (question["role"], question["content"], answer["role"], answer["state"]) == (
        "user",
        "Hello there",
        "assistant",
        "complete",
    )
    assert answer["parent_id"] == question["id"]
    assert answer["completion_tokens"] > 0 and answer["prompt_tokens"] > 0
    assert (
        second["messages"][1]["state"],
        second["messages"][1]["failure_reason"],
        second["messages"][1]["prompt_tokens"],
        second["messages"][1]["completion_tokens"],
    ) == ("failed", "provider error", 7, 3)

    deleted = await stubs.portability.DeleteAllConversations(pb.DeleteAllConversationsRequest(), metadata=alice.md)
    assert deleted.deleted_count == 2 and await export(stubs, alice) == b""

    file = b"".join(line(r) for r in exported)
    result = await import_file(stubs, alice, pieces(file, 50))
    assert (result.created_count, result.skipped_count, result.failed_count) == (2, 0, 0)
    assert [(r.line, r.outcome, r.source_conversation_id) for r in result.results] == [
        (1, pb.IMPORT_OUTCOME_CREATED, first["id"]),
        (2, pb.IMPORT_OUTCOME_CREATED, second["id"]),
    ]
    again = records(await export(stubs, alice))
    assert [shape(r) for r in again] == [shape(r) for r in exported]
    assert {r["id"] for r in again} == {r.conversation_id for r in result.results}
    listed = await stubs.conversation.ListConversations(conversation_pb2.ListConversationsRequest(), metadata=alice.md)
    assert sorted(c.message_count for c in listed.conversations) == [2, 2]

    before = await snapshot(stubs.app)
    repeat = await import_file(stubs, alice, [file])
    assert (repeat.created_count, repeat.skipped_count) == (0, 2)
    assert [r.conversation_id for r in repeat.results] == [r.conversation_id for r in result.results]
    assert await snapshot(stubs.app) == before


async def test_a_branched_tree_and_its_active_path_survive_the_round_trip(stubs: Stubs, alice: Account) -> None:
    # q1 -> a1 -> q2 -> a2, and an edited q2' with its answer a2': the active path ends at a2'.
    branched = conversation(
        "tree",
        message("q1", None),
        message("a1", "q1", "assistant", prompt_tokens=3, completion_tokens=4),
        message("q2", "a1"),
        message("a2", "q2", "assistant", state="cancelled"),
        message("q2b", "a1", content="edited"),
        message("a2b", "q2b", "assistant"),
        active_message_id="a2b",
    )
    result = await import_file(stubs, alice, [line(branched)])
    assert result.results[0].outcome == pb.IMPORT_OUTCOME_CREATED
    (exported,) = records(await export(stubs, alice))
    tree = shape(exported)
    assert [(m["parent_id"], m["role"], m["state"]) for m in tree["messages"]] == [
        (None, "user", "complete"),
        (0, "assistant", "complete"),
        (1, "user", "complete"),
        (2, "assistant", "cancelled"),
        (1, "user", "complete"),
        (4, "assistant", "complete"),
    ]
    assert tree["active"] == 5
    assert (tree["messages"][1]["prompt_tokens"], tree["messages"][1]["completion_tokens"]) == (3, 4)
    listed = await stubs.conversation.ListMessages(
        conversation_pb2.ListMessagesRequest(conversation_id=result.results[0].conversation_id), metadata=alice.md
    )
    assert [m.content for m in listed.messages] == ["text q1", "text a1", "edited", "text a2b"]


async def test_bad_lines_are_named_and_store_nothing_while_the_good_ones_import(stubs: Stubs, alice: Account) -> None:
    good = conversation("good-1", message("q", None), message("a", "q", "assistant", prompt_tokens=5))
    bad = [
        conversation("dup", message("m1", None), message("m1", None)),
        conversation("broken", message("m1", None), message("m2", "nowhere", "assistant")),
        conversation("cycle", message("m1", "m2"), message("m2", "m1")),
        conversation("own-parent", message("m1", None), message("m2", "m2")),
        conversation("role", message("m1", None, role="wizard")),
        conversation("huge", message("m1", None, content="x" * 100_001)),
        conversation("agentless", message("m1", None), agent_slug="no-such-agent"),
        conversation("tagged", message("m1", None), metadata={f"k{n}": "v" for n in range(17)}),
        conversation("flags", message("m1", None), archived="yes", create_time="last Tuesday"),
        {"format": "parley.conversations.v2", "id": "future"},
    ]
    last = conversation("good-2", message("only", None))
    big_line = [b'{"format":"parley.conversations.v1","id":"big","title":"', *[b"y" * MiB] * 100, b'"}\n']
    file = [line(good), b"\n", *[line(r) for r in bad], b"not json\n", *big_line, line(last)]

    result = await import_file(stubs, alice, file)

    outcomes = {r.line: (r.outcome, r.source_conversation_id, r.error) for r in result.results}
    assert outcomes[1][:2] == (pb.IMPORT_OUTCOME_CREATED, "good-1")
    assert 2 not in outcomes  # blank lines are no records
    errors = {source: error for outcome, source, error in outcomes.values() if outcome == pb.IMPORT_OUTCOME_FAILED}
    assert "messages[1].id: 'm1' duplicates messages[0].id" in errors["dup"]
    assert "messages[1].parent_id: 'nowhere' is not an earlier message" in errors["broken"]
    assert "messages[0].parent_id: 'm2' is not an earlier message" in errors["cycle"]
    assert "messages[1].parent_id: 'm2' is not an earlier message" in errors["own-parent"]
    assert "messages[0].role: must be one of" in errors["role"]
    assert "messages[0].content: must be at most 100,000 characters" in errors["huge"]
    assert "agent: no agent here has id '' or slug 'no-such-agent'" in errors["agentless"]
    assert "metadata: must have at most 16 pairs, not 17" in errors["tagged"]
    assert "archived: must be true or false" in errors["flags"] and "create_time" in errors["flags"]
    assert "format: must be 'parley.conversations.v1'" in errors["future"]
    assert outcomes[13][2].startswith("line: is not valid UTF-8 JSON")
    assert outcomes[14] == (pb.IMPORT_OUTCOME_FAILED, "", "line: longer than 10,485,760 bytes")
    assert outcomes[15][:2] == (pb.IMPORT_OUTCOME_CREATED, "good-2")
    assert (result.created_count, result.failed_count) == (2, 12)

    stored = records(await export(stubs, alice))
    assert [r["title"] for r in stored] == ["Conversation good-1", "Conversation good-2"]
    assert await sql(stubs.app, "SELECT count(*) FROM messages") == [(3,)]
    assert stored[0]["messages"][1]["prompt_tokens"] == 5


async def test_an_import_finds_the_agent_by_slug_and_refuses_one_the_user_may_not_use(
    stubs: Stubs, alice: Account
) -> None:
    # Exported elsewhere: the agent's id is unknown here, its slug is not.
    by_slug = conversation("elsewhere", message("m", None), agent_id=str(uuid.uuid4()), agent_slug="assistant")
    premium = conversation("premium", message("m", None), agent_slug="writer")
    result = await import_file(stubs, alice, [line(by_slug), line(premium)])
    assert [r.outcome for r in result.results] == [pb.IMPORT_OUTCOME_CREATED, pb.IMPORT_OUTCOME_FAILED]
    assert result.results[1].error.startswith("agent 'writer': ") and "PREMIUM_REQUIRED" in result.results[1].error
    assert [r["agent_slug"] for r in records(await export(stubs, alice))] == ["assistant"]


async def test_the_same_file_imported_by_two_users_gives_each_their_own_copy(stubs: Stubs, alice: Account) -> None:
    bob = await stubs.active_account("bob@example.com")
    file = line(conversation("shared", message("m", None)))
    ids = [(await import_file(stubs, account, [file])).results[0].conversation_id for account in (alice, bob)]
    assert ids[0] != ids[1]
    assert (await conversation_count(stubs, alice), await conversation_count(stubs, bob)) == (1, 1)


async def test_two_imports_of_one_file_at_once_store_each_conversation_once(stubs: Stubs, alice: Account) -> None:
    file = b"".join(line(conversation(f"c{n}", message("q", None), message("a", "q", "assistant"))) for n in range(20))
    results = await asyncio.gather(*(import_file(stubs, alice, pieces(file)) for _ in range(2)))
    assert [sum(r.created_count for r in results), sum(r.skipped_count for r in results)] == [20, 20]
    assert await conversation_count(stubs, alice) == 20
    assert await sql(stubs.app, "SELECT count(*) FROM messages") == [(40,)]


async def test_only_admins_export_another_users_conversations(stubs: Stubs, alice: Account) -> None:
    bob = await stubs.active_account("bob@example.com")
    admin = await stubs.admin_account()
    await new_conversation(stubs, alice, title="Private")
    request = pb.ExportUserConversationsRequest(user_id=alice.user.id)
    await expect_error(
        joined(stubs.portability.ExportUserConversations(request, metadata=bob.md)),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_REQUIRED",
    )
    exported = records(await joined(stubs.portability.ExportUserConversations(request, metadata=admin.md)))
    assert [r["title"] for r in exported] == ["Private"]
    assert records(await export(stubs, bob)) == []
    await expect_error(
        joined(
            stubs.portability.ExportUserConversations(
                pb.ExportUserConversationsRequest(user_id=str(uuid.uuid4())), metadata=admin.md
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "USER_NOT_FOUND",
    )
    await expect_error(
        joined(
            stubs.portability.ExportUserConversations(
                pb.ExportUserConversationsRequest(user_id="nope"), metadata=admin.md
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


@pytest.fixture(scope="module")
def other_replica(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[ServerProcess]:
    """A `parley serve` process on the test database, trusting the in-process server's tokens."""
    server = ServerProcess(
        tmp_path_factory.mktemp("replica"), DATABASE_URL=database_url, PARLEY_JWT_SECRET=TEST_JWT_SECRET
    )
    try:
        yield server.start()
    finally:
        server.kill()


async def test_delete_all_deletes_only_the_callers_and_tells_watchers_on_another_replica(
    stubs: Stubs, alice: Account, other_replica: ServerProcess
) -> None:
    bob = await stubs.active_account("bob@example.com")
    mine = [await new_conversation(stubs, alice) for _ in range(2)]
    await add_message(stubs, alice, mine[0].id, "Hello")
    theirs = await new_conversation(stubs, bob)
    async with grpc.aio.insecure_channel(other_replica.addr) as channel:
        watch = chat_pb2_grpc.ChatServiceStub(channel).WatchConversation(
            chat_pb2.WatchConversationRequest(conversation_id=mine[0].id), metadata=alice.md
        )
        assert (await watch.read()).conversation_updated.id == mine[0].id

        deleted = await stubs.portability.DeleteAllConversations(pb.DeleteAllConversationsRequest(), metadata=alice.md)

        assert deleted.deleted_count == 2
        async with asyncio.timeout(10):
            events = await read_rest(watch)
    assert kinds(events)[-1] == "conversation_deleted" and events[-1].conversation_deleted == mine[0].id
    assert await conversation_count(stubs, alice) == 0
    got = await stubs.conversation.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=theirs.id), metadata=bob.md
    )
    assert got.conversation.id == theirs.id
    again = await stubs.portability.DeleteAllConversations(pb.DeleteAllConversationsRequest(), metadata=alice.md)
    assert again.deleted_count == 0


async def test_the_account_export_has_the_account_and_every_conversation_and_no_secret(
    stubs: Stubs, alice: Account
) -> None:
    key, secret = await user_key(stubs, alice, name="laptop")
    cid = (await new_conversation(stubs, alice, title="Mine")).id
    events = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="Hi"), metadata=alice.md)
    )
    answer_id = events[-1].completed.message.id
    await stubs.feedback.SetMessageFeedback(
        feedback_pb2.SetMessageFeedbackRequest(
            feedback=feedback_pb2.MessageFeedback(
                message_id=answer_id, rating=feedback_pb2.RATING_THUMBS_UP, comment="Nice"
            )
        ),
        metadata=alice.md,
    )

    data = await joined(stubs.portability.ExportAccount(pb.ExportAccountRequest(), metadata=alice.md))

    account, *conversations = records(data)
    assert account["format"] == "parley.account.v1"
    assert (account["user"]["id"], account["user"]["email"]) == (alice.user.id, "alice@example.com")
    assert [(k["id"], k["name"]) for k in account["api_keys"]] == [(key.id, "laptop")]
    assert [(f["message_id"], f["rating"], f["comment"]) for f in account["feedback"]] == [
        (answer_id, "thumbs_up", "Nice")
    ]
    assert account["sessions"]
    assert [c["title"] for c in conversations] == ["Mine"]
    text = data.decode()
    hashes = await sql(stubs.app, "SELECT password_hash FROM users WHERE email = 'alice@example.com'")
    for secret_value in (secret, hashes[0][0], alice.tokens.access_token, alice.tokens.refresh_token):
        assert secret_value not in text
    assert "password" not in text and "key_hash" not in text

    # The account line is read and left alone by an import: the file imports as is.
    result = await import_file(stubs, alice, [data])
    assert [r.outcome for r in result.results] == [pb.IMPORT_OUTCOME_IGNORED, pb.IMPORT_OUTCOME_CREATED]


async def test_one_call_reads_at_most_10000_records_and_a_record_at_most_10000_messages(
    stubs: Stubs, alice: Account
) -> None:
    crowded = conversation("crowded", *[message(f"m{n}", None) for n in range(10_001)])
    result = await import_file(stubs, alice, pieces(line(crowded) + b"{}\n" * 10_000, MiB))
    assert len(result.results) == 10_001
    assert result.results[0].error == "messages: must have at most 10,000 messages"
    assert result.results[-1].error == (
        "an import reads at most 10,000 records: import line 10001 onwards in another call"
    )
    assert await conversation_count(stubs, alice) == 0


async def test_branches_made_by_regenerating_and_editing_come_back_after_delete_all(
    stubs: Stubs, alice: Account
) -> None:
    cid = (await new_conversation(stubs, alice)).id
    first = await collect(
        stubs.chat.SendMessage(chat_pb2.SendMessageRequest(conversation_id=cid, content="One"), metadata=alice.md)
    )
    answer_id = first[-1].completed.message.id
    await collect(
        stubs.chat.RegenerateMessage(chat_pb2.RegenerateMessageRequest(message_id=answer_id), metadata=alice.md)
    )
    question_id = first[-1].completed.message.parent_id
    await collect(
        stubs.chat.EditMessage(chat_pb2.EditMessageRequest(message_id=question_id, content="Two"), metadata=alice.md)
    )
    before = await branches(stubs, alice)
    assert len(before[0]) == 5  # One, its two answers; Two (the edit), its answer

    (exported,) = records(await export(stubs, alice))
    await stubs.portability.DeleteAllConversations(pb.DeleteAllConversationsRequest(), metadata=alice.md)
    await import_file(stubs, alice, [line(exported)])

    assert await branches(stubs, alice) == before


async def branches(stubs: Stubs, account: Account) -> list[list[tuple[Any, ...]]]:
    """Each conversation's whole tree, then its active path, without ids (parents as positions)."""
    listed = await stubs.conversation.ListConversations(
        conversation_pb2.ListConversationsRequest(), metadata=account.md
    )
    result = []
    for c in listed.conversations:
        for all_branches in (True, False):
            messages = (
                await stubs.conversation.ListMessages(
                    conversation_pb2.ListMessagesRequest(conversation_id=c.id, all_branches=all_branches),
                    metadata=account.md,
                )
            ).messages
            position = {m.id: n for n, m in enumerate(messages)}
            result.append(
                [
                    (m.content, m.role, m.state, m.sibling_index, m.sibling_count, position.get(m.parent_id))
                    for m in messages
                ]
            )
    return result
