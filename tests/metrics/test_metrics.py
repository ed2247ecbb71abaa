"""The Prometheus endpoint of real `parley serve` processes, scraped with curl.

Per-RPC counters move with the method's labels and the call's status code (a
success, a refusal by authentication, an error of the handler); a chat
exchange moves the generation metrics, a cancelled one too, and shows as
running and open while it streams; a refused login counts as a rate-limit
refusal; and with `--workers 2` one scrape holds the calls both workers
answered.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from parley.admin.v1 import admin_pb2, admin_pb2_grpc
from parley.auth.v1 import auth_pb2
from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2
from tests.helpers.accounts import Account, current_user
from tests.helpers.chat import collect, kinds, read_rest
from tests.helpers.conversations import new_conversation
from tests.helpers.metrics import Scrape, rpc_labels, scrape
from tests.helpers.repo import REPO_ROOT
from tests.helpers.served import BIN, ServerProcess, free_port
from tests.helpers.stubs import Stubs

AUTH = "parley.auth.v1.AuthService"
CONVERSATIONS = "parley.conversation.v1.ConversationService"
CHAT = "parley.chat.v1.ChatService"
ADMIN = "parley.admin.v1.AdminService"
ECHO = {"provider": "echo"}
SETTLE_SECONDS = 30


class Metered:
    """A `parley serve` with its metrics endpoint, and its address."""

    def __init__(self, root: Path, database_url: str, *args: str, **env: str) -> None:
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.server = ServerProcess(
            root,
            args=("--no-envoy", *args),
            DATABASE_URL=database_url,
            PARLEY_METRICS_ADDR=self.metrics_addr,
            **env,
        )

    def scrape(self) -> Scrape:
        return scrape(self.metrics_addr)

    def settled(self) -> Scrape:
        """A scrape once no generation runs (its after-work, e.g. the title, may outlast its stream)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while (now := self.scrape()).value("parley_generations_running", **ECHO) and time.monotonic() < deadline:
            time.sleep(0.1)
        return now


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Metered]:
    target = Metered(
        tmp_path_factory.mktemp("metered"),
        database_url,
        PARLEY_ECHO_DELAY_MS="100",
        PARLEY_LOGIN_MAX_FAILURES_PER_EMAIL="2",
    )
    target.server.start()
    try:
        yield target
    finally:
        target.server.kill()


@pytest.fixture
async def on_metered(metered: Metered, stubs: Stubs) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(metered.server.addr) as channel:
        yield Stubs(channel, stubs.app)


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_each_rpc_counts_with_its_method_and_status_code(metered: Metered, on_metered: Stubs) -> None:
    account = await on_metered.active_account("counted@example.com")
    before = metered.scrape()
    await current_user(on_metered, account.md)
    await current_user(on_metered, account.md)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await current_user(on_metered, ())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await on_metered.conversation.GetConversation(
            conversation_pb2.GetConversationRequest(conversation_id=str(uuid.uuid4())), metadata=account.md
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    after = metered.scrape()

    me = rpc_labels(AUTH, "GetCurrentUser")
    assert moved(before, after, "grpc_server_started_total", **me) == 3
    assert moved(before, after, "grpc_server_handled_total", **me, grpc_code="OK") == 2
    assert moved(before, after, "grpc_server_handled_total", **me, grpc_code="UNAUTHENTICATED") == 1
    assert moved(before, after, "grpc_server_msg_received_total", **me) == 3
    assert moved(before, after, "grpc_server_msg_sent_total", **me) == 2  # no answer to the refused call
    assert moved(before, after, "grpc_server_handling_seconds_count", **me) == 3
    assert moved(before, after, "grpc_server_handling_seconds_bucket", **me, le="+Inf") == 3
    get = rpc_labels(CONVERSATIONS, "GetConversation")
    assert moved(before, after, "grpc_server_handled_total", **get, grpc_code="NOT_FOUND") == 1
    assert moved(before, after, "grpc_server_handled_total", **get, grpc_code="OK") == 0
    assert moved(before, after, "grpc_server_msg_sent_total", **get) == 0
    # Both pools report, by name.
    for pool in ("asyncpg", "sqlalchemy"):
        assert after.has("parley_db_connections_in_use", pool=pool)
        assert after.has("parley_db_connections_waiting", pool=pool)


async def test_a_call_to_a_method_the_server_lacks_counts_as_unimplemented(metered: Metered) -> None:
    """A client built from other protos: its calls show, though no grpc_server_* series names them."""
    before = metered.scrape()
    async with grpc.aio.insecure_channel(metered.server.addr) as channel:
        for _ in range(2):
            unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{AUTH}/NoSuchMethod")
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await unary(b"")
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    after = metered.scrape()
    assert moved(before, after, "parley_unimplemented_calls_total") == 2
    assert not any("NoSuchMethod" in dict(labels).get("grpc_method", "") for _, labels in after.samples)


async def test_a_chat_exchange_moves_the_generation_metrics(metered: Metered, on_metered: Stubs) -> None:
    account = await on_metered.active_account("chatty@example.com")
    conversation = await new_conversation(on_metered, account)
    before = metered.settled()
    events = await collect(
        on_metered.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation.id, content="Hello there"), metadata=account.md
        )
    )
    assert kinds(events)[-1] == "completed"
    after = metered.settled()

    assert moved(before, after, "parley_generations_total", **ECHO, outcome="complete") == 1
    assert moved(before, after, "parley_generations_total", **ECHO, outcome="failed") == 0
    assert moved(before, after, "parley_generation_tokens_total", **ECHO) == 3  # "Echo:", "Hello", "there"
    assert moved(before, after, "parley_generation_first_token_seconds_count", **ECHO) == 1
    assert moved(before, after, "parley_generation_tokens_per_second_count", **ECHO) == 1
    assert after.value("parley_generations_running", **ECHO) == 0
    send = rpc_labels(CHAT, "SendMessage", "server_stream")
    assert moved(before, after, "grpc_server_handled_total", **send, grpc_code="OK") == 1
    assert moved(before, after, "grpc_server_msg_received_total", **send) == 1
    assert moved(before, after, "grpc_server_msg_sent_total", **send) == len(events)
    assert after.value("parley_streams_open", grpc_service=CHAT, grpc_method="SendMessage") == 0
    # The exchange's end leaves through NOTIFY: an answer's end always travels (events/bus.py).
    assert moved(before, after, "parley_notify_events_total", direction="sent") > 0


async def test_readme_metrics_block_runs(metered: Metered, on_metered: Stubs) -> None:
    """The README's curl block, run by bash after a call and a chat exchange."""
    account = await on_metered.active_account("readme@example.com")
    await current_user(on_metered, account.md)
    conversation = await new_conversation(on_metered, account)
    request = chat_pb2.SendMessageRequest(conversation_id=conversation.id, content="Hi")
    assert kinds(await collect(on_metered.chat.SendMessage(request, metadata=account.md)))[-1] == "completed"
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- metrics-walkthrough")[1].split("```sh\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "PARLEY_METRICS_ADDR": metered.metrics_addr}
    result = await asyncio.to_thread(
        subprocess.run, ["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert 'grpc_code="OK",grpc_method="GetCurrentUser"' in result.stdout
    assert 'parley_generations_total{outcome="complete",provider="echo"}' in result.stdout


async def test_a_running_generation_shows_until_it_is_cancelled(metered: Metered, on_metered: Stubs) -> None:
    account = await on_metered.active_account("patient@example.com")
    conversation = await new_conversation(on_metered, account)
    before = metered.settled()
    # 300 words at 100 ms each: half a minute, ended long before by the cancel.
    call = on_metered.chat.SendMessage(
        chat_pb2.SendMessageRequest(conversation_id=conversation.id, content=" ".join(["word"] * 300)),
        metadata=account.md,
    )
    seen = [await call.read(), await call.read()]
    assert kinds(seen) == ["accepted", "delta"]
    during = metered.scrape()
    assert during.value("parley_generations_running", **ECHO) == 1
    assert during.value("parley_streams_open", grpc_service=CHAT, grpc_method="SendMessage") == 1

    await on_metered.chat.CancelGeneration(
        chat_pb2.CancelGenerationRequest(message_id=seen[0].accepted.assistant_message_id), metadata=account.md
    )
    assert kinds(await read_rest(call))[-1] == "cancelled"
    after = metered.settled()
    assert after.value("parley_generations_running", **ECHO) == 0
    assert moved(before, after, "parley_generations_total", **ECHO, outcome="cancelled") == 1
    assert moved(before, after, "parley_generations_total", **ECHO, outcome="complete") == 0
    assert moved(before, after, "parley_generation_first_token_seconds_count", **ECHO) == 1


async def test_a_refused_login_counts_as_a_rate_limit_refusal(metered: Metered, on_metered: Stubs) -> None:
    await on_metered.active_account("guessed@example.com")
    before = metered.scrape()
    codes = []
    for _ in range(3):  # two failures are allowed (PARLEY_LOGIN_MAX_FAILURES_PER_EMAIL=2), the third is refused
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await on_metered.auth.Login(auth_pb2.LoginRequest(email="guessed@example.com", password="wrong guess"))
        codes.append(failed.value.code())
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    after = metered.scrape()
    assert moved(before, after, "parley_rate_limit_refusals_total", limit="login-email") == 1
    login = rpc_labels(AUTH, "Login")
    assert moved(before, after, "grpc_server_handled_total", **login, grpc_code="RESOURCE_EXHAUSTED") == 1


async def test_one_scrape_holds_the_calls_of_every_worker(tmp_path: Path, database_url: str, stubs: Stubs) -> None:
    workers = Metered(tmp_path, database_url, "--workers", "2")
    workers.server.start()
    try:
        async with grpc.aio.insecure_channel(workers.server.addr) as channel:
            admin = await Stubs(channel, stubs.app).admin_account("metrics-admin@example.com")
        answered_by = await _health_until_both_workers_answer(workers.server.addr, admin)
        after = workers.scrape()
    finally:
        workers.server.kill()
    assert len(set(answered_by)) == 2, answered_by
    health = rpc_labels(ADMIN, "GetSystemHealth")
    assert after.value("grpc_server_handled_total", **health, grpc_code="OK") == len(answered_by)
    assert after.value("grpc_server_handling_seconds_count", **health) == len(answered_by)


async def _health_until_both_workers_answer(addr: str, admin: Account) -> list[int]:
    """GetSystemHealth on a new connection each time (the kernel picks a worker
    per connection) until two workers have answered; the pid of each answer."""
    pids: list[int] = []
    while len(set(pids)) < 2 and len(pids) < 200:
        async with grpc.aio.insecure_channel(addr) as channel:
            health = await admin_pb2_grpc.AdminServiceStub(channel).GetSystemHealth(
                admin_pb2.GetSystemHealthRequest(), metadata=admin.md
            )
        pids.append(next(replica.pid for replica in health.replicas if replica.current))
    return pids


def test_a_taken_metrics_port_stops_serve_with_one_line(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(tmp_path, DATABASE_URL=database_url, PARLEY_METRICS_ADDR=f"127.0.0.1:{port}")
        result = subprocess.run(
            [str(BIN / "parley"), "serve", "--no-envoy"], env=server.env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1, result.stderr
    assert f"parley: cannot serve metrics on 127.0.0.1:{port} (PARLEY_METRICS_ADDR)" in result.stderr
