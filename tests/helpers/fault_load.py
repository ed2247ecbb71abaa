"""Load that a database outage must not hurt, through the Python client.

Shared by the fault test (tests/db/test_faults.py) and the soak benchmark
(scripts/soak.py): writers create messages with request ids (retrying the
same id after UNAVAILABLE, so each is stored exactly once) and read them
back; streamers send chat messages and follow each answer to its end,
resuming one the client gave up on. `Load` records what a user would notice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import grpc

from parley.client import Accepted, Cancelled, Completed, Failed, ParleyClient, ParleyError, TextDelta
from parley.conversation.v1 import conversation_pb2
from parley_server.db.database import schema_settings
from parley_server.settings import DEFAULT_DB_SCHEMA

NOTE_PREFIX = "note "


@dataclass
class Load:
    """What the clients saw."""

    acked: dict[str, str] = field(default_factory=dict)  # request_id -> message id
    streams_open: int = 0
    streams_completed: int = 0
    streams_resumed: int = 0
    # Answers that did not end COMPLETE with the expected text, described.
    wrong_text: list[str] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)


def expected_answer(content: str) -> str:
    """What the offline echo provider answers."""
    return "Echo: " + " ".join(content.split())


def _count(load: Load, error: ParleyError) -> None:
    """Count an error; anything but UNAVAILABLE is a failure the caller must see."""
    load.codes[error.code.name] += 1
    if error.code != grpc.StatusCode.UNAVAILABLE:
        raise error


async def write_loop(client: ParleyClient, conversation_id: str, load: Load, stop: asyncio.Event) -> None:
    """CreateMessage with a request id until acknowledged (same id on every retry), then ListMessages."""
    while not stop.is_set():
        request_id = str(uuid.uuid4())
        request = conversation_pb2.CreateMessageRequest(
            conversation_id=conversation_id,
            role=conversation_pb2.MESSAGE_ROLE_USER,
            content=NOTE_PREFIX + request_id,
            request_id=request_id,
        )
        while True:
            try:
                response = await client.conversations.CreateMessage(request)
                load.acked[request_id] = response.message.id
                break
            except ParleyError as error:
                _count(load, error)
                await asyncio.sleep(error.retry_after or 0.2)
        try:
            await client.conversations.ListMessages(
                conversation_pb2.ListMessagesRequest(conversation_id=conversation_id)
            )
        except ParleyError as error:
            _count(load, error)


async def stream_loop(
    client: ParleyClient, conversation_id: str, tag: str, words: int, load: Load, stop: asyncio.Event
) -> None:
    """SendMessage after SendMessage; an answer the client gave up on is resumed to its end."""
    n = 0
    while not stop.is_set():
        n += 1
        content = " ".join(f"{tag}-{n}-{i}" for i in range(words))
        text, message_id, final, ended = "", "", None, None
        load.streams_open += 1
        try:
            try:
                async for event in client.send_message(conversation_id, content):
                    if isinstance(event, Accepted):
                        message_id = event.assistant_message_id
                    elif isinstance(event, TextDelta):
                        text += event.text
                    elif isinstance(event, Completed):
                        final = event.message
                    elif isinstance(event, (Failed, Cancelled)):
                        ended = event
            except ParleyError as error:
                _count(load, error)
                if not message_id:
                    continue  # nothing was accepted: the user just sends again
                while final is None and ended is None:
                    try:
                        async for event in client.resume(message_id, len(text)):
                            if isinstance(event, TextDelta):
                                text += event.text
                            elif isinstance(event, Completed):
                                final = event.message
                            elif isinstance(event, (Failed, Cancelled)):
                                ended = event
                    except ParleyError as again:
                        _count(load, again)
                        await asyncio.sleep(again.retry_after or 0.5)
                load.streams_resumed += 1
        finally:
            load.streams_open -= 1
        expected = expected_answer(content)
        if final is None or not text == final.content == expected:
            ending = f"{final.state} {final.content!r}" if final else f"{ended!r}"
            load.wrong_text.append(f"{message_id}: expected {expected!r}, streamed {text!r}, ended {ending}")
        load.streams_completed += 1


@dataclass(frozen=True)
class Audit:
    """What PostgreSQL holds after the load: what users were promised."""

    lost: int  # acknowledged writes that are not stored
    duplicated: int  # request ids stored more than once
    streaming: int  # answers left STREAMING


async def audit(dsn: str, load: Load) -> Audit:
    connection = await asyncpg.connect(dsn, server_settings=schema_settings(DEFAULT_DB_SCHEMA))
    try:
        stored = await connection.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])", list(load.acked.values())
        )
        duplicated = await connection.fetchval(
            "SELECT count(*) FROM (SELECT content FROM messages WHERE starts_with(content, $1)"
            " GROUP BY content HAVING count(*) > 1) d",
            NOTE_PREFIX,
        )
        streaming = await connection.fetchval("SELECT count(*) FROM messages WHERE state = 'streaming'")
    finally:
        await connection.close()
    return Audit(lost=len(load.acked) - stored, duplicated=duplicated, streaming=streaming)
