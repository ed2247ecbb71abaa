"""The Python client's export, import and delete-all against the in-process server."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import pytest

from parley.client import ParleyClient, ParleyError, file_chunks
from parley.portability.v1 import portability_pb2 as pb
from parley_server.transport.server import RunningServer
from tests.helpers.accounts import Account
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.stubs import Stubs


@pytest.fixture
async def client(server: RunningServer, alice: Account) -> AsyncIterator[ParleyClient]:
    async with ParleyClient(f"127.0.0.1:{server.port}") as c:
        await c.login("alice@example.com", alice.password)
        yield c


async def test_export_delete_all_and_import_back(stubs: Stubs, alice: Account, client: ParleyClient) -> None:
    cid = (await new_conversation(stubs, alice, title="Notes")).id
    await add_message(stubs, alice, cid, "Remember the milk.")
    exported = b"".join([chunk async for chunk in client.export_conversations()])
    assert [json.loads(line)["title"] for line in exported.splitlines()] == ["Notes"]

    assert await client.delete_all_conversations() == 1
    result = await client.import_conversations(file_chunks(io.BytesIO(exported), size=7))
    assert [r.outcome for r in result.results] == [pb.IMPORT_OUTCOME_CREATED]

    account = b"".join([chunk async for chunk in client.export_account()])
    first, second = (json.loads(line) for line in account.splitlines())
    assert first["user"]["email"] == "alice@example.com"
    assert second["messages"][0]["content"] == "Remember the milk."


async def test_a_refused_import_raises_a_parley_error(server: RunningServer) -> None:
    async with ParleyClient(f"127.0.0.1:{server.port}") as anonymous:
        with pytest.raises(ParleyError) as raised:
            await anonymous.import_conversations([b"{}\n"])
    assert raised.value.reason == "TOKEN_MISSING"
