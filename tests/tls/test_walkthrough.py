"""Issue 13's "done means", against `parley serve` with mutual TLS: a backend with
only an API key and the generated stubs creates a conversation for a user and
streams a chat on that user's behalf; the README's TLS blocks and `parley chat`
over mutual TLS, for real."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from parley.agent.v1 import agent_pb2, agent_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from tests.helpers.accounts import PASSWORD
from tests.helpers.grpc_web import EMPTY_FRAME, GRPC_WEB, http
from tests.helpers.repo import REPO_ROOT
from tests.helpers.served import BIN, Served, grpc_serving, start
from tests.helpers.terminal import Terminal

EMAIL = "ada@example.com"


def readme_block(marker: str) -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    return readme.split(f"<!-- {marker}")[1].split("```sh\n", 1)[1].split("```", 1)[0]


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={**env, "PATH": f"{BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the README's certificates in certs/, made by its own block."""
    directory = tmp_path_factory.mktemp("walkthrough")
    made = bash(readme_block("tls-certificates"), directory, dict(os.environ))
    assert made.returncode == 0, made.stderr
    return directory


def credentials(workdir: Path, client: str | None = "billing", ca: str = "ca") -> grpc.ChannelCredentials:
    certs = workdir / "certs"
    return grpc.ssl_channel_credentials(
        (certs / f"{ca}.pem").read_bytes(),
        (certs / f"{client}.key").read_bytes() if client else None,
        (certs / f"{client}.pem").read_bytes() if client else None,
    )


@pytest.fixture(scope="module")
def served(workdir: Path) -> Iterator[Served]:
    """`parley serve` with the README's mutual-TLS settings, Envoy included."""
    certs = workdir / "certs"
    data = workdir / "data"
    data.mkdir()
    running = start(
        data,
        credentials=credentials(workdir),
        PARLEY_TLS_CERT_FILE=str(certs / "server.pem"),
        PARLEY_TLS_KEY_FILE=str(certs / "server.key"),
        PARLEY_TLS_CLIENT_CA_FILE=str(certs / "ca.pem"),
        PARLEY_ENVOY_TLS_CA_FILE=str(certs / "ca.pem"),
        PARLEY_ENVOY_TLS_CERT_FILE=str(certs / "envoy.pem"),
        PARLEY_ENVOY_TLS_KEY_FILE=str(certs / "envoy.key"),
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def ada(served: Served, workdir: Path) -> str:
    """Ada registers and verifies her address (as on the web page); her user id."""
    async with grpc.aio.secure_channel(served.addr, credentials(workdir)) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        await auth.Register(auth_pb2.RegisterRequest(email=EMAIL, password=PASSWORD))
        outbox = served.parley("outbox", "--to", EMAIL, "-n", "1")
        token = re.search(r"token=([\w-]+)", outbox.stdout)
        assert token, outbox.stdout + outbox.stderr
        await auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token.group(1)))
        login = await auth.Login(auth_pb2.LoginRequest(email=EMAIL, password=PASSWORD))
    return str(login.user.id)


async def test_a_backend_with_an_api_key_and_the_stubs_chats_for_a_user_over_mutual_tls(
    served: Served, workdir: Path, ada: str
) -> None:
    created = served.parley(
        "create-service-account", "support backend", "--scope", "read", "--scope", "write", "--scope", "chat",
        "--scope", "act-as-user",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    # The backend: the generated stubs, its API key, mutual TLS, and Ada's id.
    metadata = (("authorization", f"Bearer {key}"), ("x-parley-on-behalf-of", ada))
    async with grpc.aio.secure_channel(served.addr, credentials(workdir)) as channel:
        agents = await agent_pb2_grpc.AgentServiceStub(channel).ListAgents(
            agent_pb2.ListAgentsRequest(), metadata=metadata
        )
        assistant = next(agent for agent in agents.agents if agent.slug == "assistant")
        conversations = conversation_pb2_grpc.ConversationServiceStub(channel)
        conversation = (
            await conversations.CreateConversation(
                conversation_pb2.CreateConversationRequest(agent_id=assistant.id), metadata=metadata
            )
        ).conversation
        events = [
            event
            async for event in chat_pb2_grpc.ChatServiceStub(channel).SendMessage(
                chat_pb2.SendMessageRequest(conversation_id=conversation.id, content="Hello for Ada"),
                metadata=metadata,
            )
        ]
        kinds = [event.WhichOneof("event") for event in events]
        assert kinds[0] == "accepted" and kinds[-1] == "completed" and "delta" in kinds
        assert "".join(event.delta.text for event in events if event.HasField("delta")) == "Echo: Hello for Ada"
        # It is Ada's conversation: her own session lists it.
        login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(email=EMAIL, password=PASSWORD)
        )
        listed = await conversations.ListConversations(
            conversation_pb2.ListConversationsRequest(),
            metadata=(("authorization", f"Bearer {login.tokens.access_token}"),),
        )
    assert conversation.id in [c.id for c in listed.conversations]


def test_the_readme_tls_walkthrough_runs(served: Served, workdir: Path, ada: str) -> None:
    json_helper = readme_block("grpcurl-walkthrough").split("grpcurl -plaintext", 1)[0]
    result = bash(json_helper + f"ADA={ada}\n" + readme_block("tls-walkthrough"), workdir, served.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"display_name": "billing backend"' in result.stdout, "the certificate alone calls as the account"
    assert '"content": "Echo: Hello over mutual TLS"' in result.stdout


def chat(served: Served, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`parley chat` that fails before its first prompt, so needs no terminal."""
    return subprocess.run(
        [str(BIN / "parley"), "chat", "--server", served.addr, "--config-dir", str(workdir / "config"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_parley_chat_with_a_key_over_mutual_tls(served: Served, workdir: Path, ada: str) -> None:
    created = served.parley(
        "create-service-account", "chat backend", "--scope", "read", "--scope", "write", "--scope", "chat",
        "--scope", "act-as-user",
    )  # fmt: skip
    certs = workdir / "certs"
    terminal = Terminal(
        "--server", served.addr, "--config-dir", str(workdir / "config"),
        "--ca", str(certs / "ca.pem"), "--cert", str(certs / "billing.pem"), "--key", str(certs / "billing.key"),
        "--api-key", created.stdout.strip(), "--on-behalf-of", ada, "--new", "--agent", "assistant",
        env={**os.environ, "TERM": "dumb"},
    )  # fmt: skip
    try:
        await terminal.expect(f"Calling as {EMAIL} with an API key")
        await terminal.expect("you> ")
        terminal.sendline("Hello from the terminal")
        await terminal.expect("Echo: Hello from the terminal")
        terminal.sendline("/quit")
        assert await terminal.exit_code() == 0
    finally:
        terminal.close()


def last_line(text: str) -> str:
    """The client's own error line: gRPC Core logs each failed handshake on
    stderr before it (unless GRPC_VERBOSITY=ERROR)."""
    return text.strip().splitlines()[-1]


def test_parley_chat_explains_a_refused_handshake(served: Served, workdir: Path) -> None:
    certs = workdir / "certs"
    without_certificate = chat(served, workdir, "--ca", str(certs / "ca.pem"), "--api-key", "pk_x", "--new")
    assert without_certificate.returncode == 1
    assert last_line(without_certificate.stderr) == (
        f"error: cannot connect to the Parley server at {served.addr}: the server refused the TLS connection; "
        "it requires a client certificate (--cert and --key)"
    )
    wrong_ca = chat(
        served,
        workdir,
        "--ca", str(certs / "billing.pem"), "--cert", str(certs / "billing.pem"), "--key", str(certs / "billing.key"),
        "--api-key", "pk_x", "--new",
    )  # fmt: skip
    assert wrong_ca.returncode == 1
    assert last_line(wrong_ca.stderr) == (
        f"error: cannot connect to the Parley server at {served.addr}: the server's TLS certificate was not "
        "accepted (unable to get local issuer certificate); check --ca"
    )


def test_sighup_reloads_parley_serve_and_keeps_envoy(served: Served, workdir: Path) -> None:
    """The single process with Envoy: SIGHUP reloads (nothing stops), Envoy still reaches the server."""
    served.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "TLS certificates reloaded" not in served.log.read_text():
        assert served.process.poll() is None, served.log_tail()
        assert time.monotonic() < deadline, served.log_tail()
        time.sleep(0.1)
    assert grpc_serving(served.addr, credentials(workdir))
    status, _, body = http(
        f"{served.web_url}/grpc.health.v1.Health/Check", method="POST", headers=GRPC_WEB, body=EMPTY_FRAME
    )
    assert status == 200 and body[:7] == b"\x00\x00\x00\x00\x02\x08\x01"
