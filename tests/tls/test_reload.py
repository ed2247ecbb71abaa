"""Certificates reloaded while serving: open streams go on, new connections get the new certificate."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from pathlib import Path

import grpc
import pytest

from parley.chat.v1 import chat_pb2
from parley.client import ParleyClient
from parley.conversation.v1 import conversation_pb2
from parley_server.app import App
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.certificates import Pair, Pki, peer_certificate, tls_server
from tests.helpers.chat import collect
from tests.helpers.served import Served, start
from tests.helpers.stubs import Stubs

ASSISTANT = conversation_pb2.MESSAGE_ROLE_ASSISTANT
RELOAD_TIMEOUT_SECONDS = 30
# New connections checked after a reload: with two workers sharing the port,
# each connection lands on either, so all of them seeing the new certificate
# means both reloaded (one that did not would be missed with odds of 2^-12).
CONNECTIONS_CHECKED = 12


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def _install(source: Pair, target: Pair) -> None:
    """Put a certificate where the server reads its files, as an operator renewing it would."""
    shutil.copyfile(source.cert, target.cert)
    shutil.copyfile(source.key, target.key)


async def test_a_stream_open_across_a_reload_goes_on_and_new_connections_see_the_new_certificate(
    stubs: Stubs, alice: Account, app: App, pki: Pki, tmp_path: Path
) -> None:
    first, second = pki.server("first"), pki.server("second")
    served = Pair(tmp_path / "server.pem", tmp_path / "server.key")
    _install(first, served)
    conversation = (
        await stubs.conversation.CreateConversation(
            conversation_pb2.CreateConversationRequest(agent_id=await agent_id(app)), metadata=alice.md
        )
    ).conversation
    async with tls_server(app, served) as running, ParleyClient(f"127.0.0.1:{running.port}", tls=pki.tls()) as client:
        client.use_tokens(alice.tokens.access_token, alice.tokens.refresh_token)
        watch = client.chat.WatchConversation(chat_pb2.WatchConversationRequest(conversation_id=conversation.id))
        assert (await watch.read()).WhichOneof("event") == "conversation_updated"
        assert await asyncio.to_thread(peer_certificate, running.port, pki.tls()) == first.der()

        _install(second, served)
        running.reload_certificates()
        assert await asyncio.to_thread(peer_certificate, running.port, pki.tls()) == second.der()

        # The watch, on the connection made before the reload, still delivers.
        await collect(
            stubs.chat.SendMessage(
                chat_pb2.SendMessageRequest(conversation_id=conversation.id, content="after the reload"),
                metadata=alice.md,
            )
        )
        while True:
            response = await watch.read()
            assert response is not grpc.aio.EOF
            completed = response.message_completed
            if response.WhichOneof("event") == "message_completed" and completed.role == ASSISTANT:
                assert completed.content == "Echo: after the reload"
                break
        watch.cancel()


async def test_unusable_new_files_keep_the_certificates_in_use(app: App, pki: Pki, tmp_path: Path) -> None:
    first = pki.server("kept")
    served = Pair(tmp_path / "server.pem", tmp_path / "server.key")
    _install(first, served)
    async with tls_server(app, served) as running:
        served.key.write_text("not a key")
        assert running.certificates is not None and running.certificates.reload() is False
        assert await asyncio.to_thread(peer_certificate, running.port, pki.tls()) == first.der()


def _wait_for(served: Served, line: str, count: int) -> None:
    """Until served's log holds line count times."""
    deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
    while served.log.read_text().count(line) < count:
        assert served.process.poll() is None, served.log_tail()
        assert time.monotonic() < deadline, f"{line!r} not {count} times:\n{served.log_tail()}"
        time.sleep(0.1)


def test_sighup_reloads_every_worker_of_parley_serve(pki: Pki, tmp_path: Path) -> None:
    first, second = pki.server("first-served"), pki.server("second-served")
    served_files = Pair(tmp_path / "server.pem", tmp_path / "server.key")
    _install(first, served_files)
    (tmp_path / "data").mkdir()
    served = start(
        tmp_path / "data",
        "--workers",
        "2",
        envoy=False,
        credentials=pki.tls().credentials(),
        PARLEY_TLS_CERT_FILE=str(served_files.cert),
        PARLEY_TLS_KEY_FILE=str(served_files.key),
    )
    try:
        # `start` returns once one worker serves; a worker reloads on SIGHUP
        # from when it says it listens (before, it reads the files as it starts).
        _wait_for(served, "Parley gRPC listening on", 2)
        port = int(served.addr.rsplit(":", 1)[1])
        assert peer_certificate(port, pki.tls()) == first.der()
        _install(second, served_files)
        served.process.send_signal(signal.SIGHUP)
        _wait_for(served, "TLS certificates reloaded", 2)
        seen = {peer_certificate(port, pki.tls()) for _ in range(CONNECTIONS_CHECKED)}
        assert seen == {second.der()}
    finally:
        assert served.stop() == 0, served.log_tail()
