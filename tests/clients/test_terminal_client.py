"""The terminal client (`python -m parley.client.terminal`, mounted as `parley
chat`) driven through a pseudo-terminal, like a user at a keyboard, against the
in-process server."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from parley_server.db.models import Message, MessageRole, MessageState
from parley_server.transport.server import RunningServer
from tests.helpers.accounts import Account
from tests.helpers.conversations import new_conversation
from tests.helpers.stubs import Stubs
from tests.helpers.terminal import Terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
StartTerminal = Callable[..., "Terminal"]
LONG = " ".join(f"word{i}" for i in range(400))


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
async def terminal(server: RunningServer, config_dir: Path) -> AsyncIterator[StartTerminal]:
    opened: list[Terminal] = []

    def start(*args: str, **env: str) -> Terminal:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        term = Terminal(
            "--server",
            f"127.0.0.1:{server.port}",
            "--config-dir",
            str(config_dir),
            *args,
            env={**base, "TERM": "dumb", **env},
        )
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


async def messages(stubs: Stubs) -> list[Message]:
    async with stubs.app.database.transaction() as db:
        return list((await db.execute(select(Message).order_by(Message.seq))).scalars())


async def test_chat_stream_stop_and_saved_session(
    stubs: Stubs, alice: Account, terminal: StartTerminal, config_dir: Path, server: RunningServer
) -> None:
    term = terminal("--new", "--agent", "assistant", PARLEY_EMAIL="alice@example.com", PARLEY_PASSWORD=alice.password)
    await term.expect(r"Logged in as alice@example\.com\.")
    await term.expect(r"New conversation with Assistant")
    await term.expect(r"you> ")
    term.sendline("hello terminal")
    await term.expect(r"Assistant> Echo: hello terminal\n")
    await term.expect(r"you> ")

    # Ctrl-C while the answer streams stops the generation, and we get the prompt back.
    term.sendline(LONG)
    await term.expect(r"Assistant> Echo: word0 word1 word2")
    term.send("\x03")
    await term.expect(r"\[stopped\]\n")
    await term.expect(r"you> ")
    stored = await messages(stubs)
    answer = stored[-1]
    assert answer.role is MessageRole.ASSISTANT and answer.state is MessageState.CANCELLED
    assert ("Echo: " + LONG).startswith(answer.content) and 0 < len(answer.content) < len("Echo: " + LONG)
    # What was printed is what was kept.
    printed = re.findall(r"Assistant> (.*)\[stopped\]", term.text)[-1]
    assert printed == answer.content

    term.sendline("/quit")
    assert await term.exit_code() == 0
    assert "Traceback" not in term.text

    # The token pair is cached, private to the user.
    cache = config_dir / "tokens.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    entry = json.loads(cache.read_text())["servers"][f"127.0.0.1:{server.port}"]
    assert entry["email"] == "alice@example.com" and entry["refresh_token"]

    # Second run: no password, the saved session is reused; pick the conversation.
    again = terminal()
    await again.expect(r"Logged in as alice@example\.com \(saved session\)\.")
    await again.expect(r"Recent conversations:")
    await again.expect(r" 1\. .*Assistant · 4 messages")
    await again.expect(r"Choose \[1-1, n\]: ")
    again.sendline("1")
    await again.expect(r"you> hello terminal\n")
    await again.expect(r"Assistant> Echo: hello terminal\n")
    await again.expect(r"\[stopped\]\n")
    await again.expect(r"you> ")
    again.send("\x04")  # Ctrl-D at the prompt exits
    assert await again.exit_code() == 0
    assert "Password" not in again.text and "Traceback" not in again.text


async def test_commands_new_list_and_help(stubs: Stubs, alice: Account, terminal: StartTerminal) -> None:
    term = terminal(PARLEY_EMAIL="alice@example.com", PARLEY_PASSWORD=alice.password)
    await term.expect(r"No conversations yet; starting a new one\.")
    # Alice may only use the public agent (the others are premium / restricted): no question.
    await term.expect(r"New conversation with Assistant")
    await term.expect(r"you> ")
    term.sendline("/help")
    await term.expect(r"/list +pick another conversation")
    term.sendline("/nope")
    await term.expect(r"error: unknown command /nope")
    term.sendline("//fail is not a command")
    await term.expect(r"Assistant> Echo: /fail is \[failed: echo provider asked to fail\]\n")
    await term.expect(r"you> ")
    term.sendline("/new")
    await term.expect(r"New conversation with")
    await term.expect(r"you> ")
    term.sendline("/list")
    await term.expect(r"Choose \[1-2, n, Enter to stay\]: ")
    term.sendline("")
    await term.expect(r"you> ")
    term.send("\x03")  # Ctrl-C at the prompt exits
    assert await term.exit_code() == 0
    assert "Traceback" not in term.text


async def test_conversation_option_opens_it(stubs: Stubs, alice: Account, terminal: StartTerminal) -> None:
    first = terminal("--new", PARLEY_EMAIL="alice@example.com", PARLEY_PASSWORD=alice.password)
    await first.expect(r"you> ")
    first.sendline("remember me")
    await first.expect(r"Echo: remember me\n")
    first.sendline("/quit")
    assert await first.exit_code() == 0
    conversation_id = str((await messages(stubs))[0].conversation_id)

    opened = terminal("--conversation", conversation_id)
    await opened.expect(r"you> remember me\n")
    await opened.expect(r"you> ")
    opened.sendline("/quit")
    assert await opened.exit_code() == 0

    missing = terminal("--conversation", str(uuid.uuid4()))
    assert await missing.exit_code() == 1
    assert re.search(r"error: .*not found", missing.text) and "Traceback" not in missing.text


async def test_regenerate_and_edit_the_last_exchange(stubs: Stubs, alice: Account, terminal: StartTerminal) -> None:
    term = terminal("--new", PARLEY_EMAIL="alice@example.com", PARLEY_PASSWORD=alice.password)
    await term.expect(r"you> ")
    term.sendline("/regenerate")
    await term.expect(r"error: there is no answer to regenerate yet")
    term.sendline("/help")
    await term.expect(r"/regenerate +answer your last message again")
    await term.expect(r"/edit TEXT +replace your last message")
    term.sendline("hello terminal")
    await term.expect(r"Assistant> Echo: hello terminal\n")
    term.sendline("/regenerate")
    await term.expect(r"Assistant> Echo: hello terminal\n")
    await term.expect(r"you> ")
    term.sendline("/edit")
    await term.expect(r"error: usage: /edit NEW TEXT")
    term.sendline("/edit bonjour")
    await term.expect(r"Assistant> Echo: bonjour\n")
    term.sendline("/regenerate")  # regenerates the answer to the edited message
    await term.expect(r"Assistant> Echo: bonjour\n")
    await term.expect(r"you> ")
    term.sendline("/quit")
    assert await term.exit_code() == 0
    stored = await messages(stubs)
    assert [(m.role, m.content) for m in stored] == [
        (MessageRole.USER, "hello terminal"),
        (MessageRole.ASSISTANT, "Echo: hello terminal"),
        (MessageRole.ASSISTANT, "Echo: hello terminal"),
        (MessageRole.USER, "bonjour"),
        (MessageRole.ASSISTANT, "Echo: bonjour"),
        (MessageRole.ASSISTANT, "Echo: bonjour"),
    ]
    assert stored[3].parent_id is None and stored[5].parent_id == stored[3].id
    # Reopened, the history shows which version of each message is shown.
    opened = terminal("--conversation", str(stored[0].conversation_id))
    await opened.expect(r"you \(2/2\)> bonjour\n")
    await opened.expect(r"Assistant \(2/2\)> Echo: bonjour\n")
    await opened.expect(r"you> ")
    opened.sendline("/quit")
    assert await opened.exit_code() == 0
    assert "Traceback" not in term.text + opened.text


async def test_wrong_password_is_one_clear_line(alice: Account, terminal: StartTerminal) -> None:
    term = terminal(PARLEY_EMAIL="alice@example.com", PARLEY_PASSWORD="not the right one")
    assert await term.exit_code() == 1
    assert "error: wrong email or password" in term.text and "Traceback" not in term.text


async def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    from tests.helpers.served import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    address = f"127.0.0.1:{free_port()}"
    term = Terminal(
        "--server",
        address,
        "--config-dir",
        str(tmp_path),
        env={**env, "TERM": "dumb", "PARLEY_EMAIL": "a@example.com", "PARLEY_PASSWORD": "whatever it is"},
    )
    try:
        assert await term.exit_code() == 1
        assert f"error: cannot reach the Parley server at {address}" in term.text
        assert "Traceback" not in term.text
    finally:
        term.close()


async def test_logout_forgets_the_session(alice: Account, terminal: StartTerminal, config_dir: Path) -> None:
    term = terminal("--new", "--agent", "assistant", PARLEY_EMAIL="alice@example.com", PARLEY_PASSWORD=alice.password)
    await term.expect(r"you> ")
    term.sendline("/quit")
    assert await term.exit_code() == 0
    out = terminal("--logout")
    assert await out.exit_code() == 0
    assert "Logged out alice@example.com" in out.text
    assert json.loads((config_dir / "tokens.json").read_text())["servers"] == {}


async def test_export_and_import_a_file(stubs: Stubs, alice: Account, terminal: StartTerminal, tmp_path: Path) -> None:
    login = {"PARLEY_EMAIL": "alice@example.com", "PARLEY_PASSWORD": alice.password}
    await new_conversation(stubs, alice, title="Kept")
    file = tmp_path / "mine.jsonl"
    out = terminal("--export", str(file), **login)
    assert await out.exit_code() == 0, out.text
    assert "Wrote 1 line to" in out.text
    assert [json.loads(line)["title"] for line in file.read_text().splitlines()] == ["Kept"]

    file.write_text(file.read_text() + '{"format": "parley.conversations.v1"}\n')
    out = terminal("--import", str(file), **login)
    assert await out.exit_code() == 1, out.text
    assert f"{file}:2: id: is required" in out.text
    assert "Imported 1 conversation; 0 already imported, 1 refused." in out.text
    again = terminal("--import", str(file), **login)
    assert await again.exit_code() == 1
    assert "Imported 0 conversations; 1 already imported, 1 refused." in again.text
