"""Parley's terminal client: chat with an agent from a shell.

    python -m parley.client.terminal [--server HOST:PORT] [--conversation ID | --new [--agent SLUG]]

(also mounted as `parley chat`). It logs in (email and password from a prompt,
or PARLEY_EMAIL / PARLEY_PASSWORD for scripts), keeps the token pair in the
user's config directory (tokens.json, mode 0600, one entry per server) so the
next run needs no password, lets you pick a recent conversation or start one,
and streams the answers as they are generated. With an API key (--api-key or
PARLEY_API_KEY) it does not log in at all; a service account's key may chat
for a user (--on-behalf-of). --tls, --ca, --cert and --key connect over TLS
or mutual TLS.

At the `you>` prompt: type a message; `/regenerate` answers the last message
again, `/edit TEXT` replaces the last message with TEXT and answers that
(the earlier versions stay, as branches: "(2/3)" in the history says which
version is shown), `/list` picks another conversation, `/new` starts a new one
with the same agent, `/help`, `/quit`. Ctrl-C while an answer streams stops
the generation (CancelGeneration; the partial answer is kept) and returns to
the prompt; Ctrl-C or Ctrl-D at the prompt exits.

--export FILE and --export-account FILE write the caller's conversations (or
everything kept about the account) as JSON Lines (docs/export-format.md);
--import FILE imports such a file, printing each refused line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any, TextIO, TypeVar

import grpc
import platformdirs

from parley.agent.v1 import agent_pb2
from parley.auth.v1 import auth_pb2
from parley.client._auth import Tokens
from parley.client.client import ParleyClient, file_chunks
from parley.client.errors import ParleyError
from parley.client.events import Accepted, Cancelled, ChatEvent, Completed, Failed, TextDelta
from parley.client.tls import Tls, explain_connection_failure
from parley.conversation.v1 import conversation_pb2
from parley.portability.v1 import portability_pb2

__all__ = ["add_arguments", "main", "run"]

DEFAULT_SERVER = "127.0.0.1:50051"
RECENT_CONVERSATIONS = 10
HISTORY_SHOWN = 10
LOGIN_ATTEMPTS = 3
T = TypeVar("T")

# One-line explanations of the error reasons a chat user is likely to meet.
FRIENDLY_REASONS = {
    "INVALID_CREDENTIALS": "wrong email or password",
    "EMAIL_NOT_VERIFIED": "your email address is not verified yet: open the link in the verification email",
    "ACCOUNT_WAITLISTED": "your account is on the waitlist",
    "ACCOUNT_DISABLED": "your account is disabled",
    "PREMIUM_REQUIRED": "this agent needs a premium account",
    "NOT_GRANTED": "you have no access to this agent",
    "AGENT_DISABLED": "this agent is disabled",
    "QUOTA_EXCEEDED": "your daily message quota for this agent is used up",
}

HELP = """\
Type a message and press Enter; the answer streams in as it is generated.
  /regenerate   answer your last message again (a new version of the answer)
  /edit TEXT    replace your last message with TEXT and answer it
  /list   pick another conversation      /new    start a new conversation
  /help   this text                      /quit   exit (or Ctrl-D)
Earlier versions are kept: (2/3) marks the second of three versions.
Ctrl-C stops an answer while it streams; at the prompt it exits.
Start a message with // to send text beginning with a slash."""


class UserExit(Exception):
    """The user chose to leave (Ctrl-D, Ctrl-C or /quit at a prompt)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the terminal client's options to parser (a subparser for `parley chat`)."""
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help=f"Parley gRPC address (default: $PARLEY_GRPC_ADDR or {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--tls", action="store_true", help="connect with TLS (the system's root certificates unless --ca)"
    )
    parser.add_argument("--ca", type=Path, metavar="FILE", help="PEM CA of the server's certificate (implies --tls)")
    parser.add_argument(
        "--cert", type=Path, metavar="FILE", help="PEM client certificate for mutual TLS (with --key; implies --tls)"
    )
    parser.add_argument("--key", type=Path, metavar="FILE", help="PEM private key of --cert")
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="call with this API key instead of logging in (default: $PARLEY_API_KEY; nothing is cached)",
    )
    parser.add_argument(
        "--on-behalf-of",
        metavar="USER_ID",
        help="with a service account's key (SCOPE_ACT_AS_USER): chat as this user",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="where tokens.json is kept (default: the user config dir, e.g. ~/.config/parley)",
    )
    parser.add_argument("--email", help="log in as this email (default: $PARLEY_EMAIL or a prompt)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--conversation", metavar="ID", help="continue this conversation")
    which.add_argument("--new", action="store_true", help="start a new conversation")
    which.add_argument("--logout", action="store_true", help="log out, forget the cached tokens and exit")
    which.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="write your conversations to FILE as JSON Lines (docs/export-format.md) and exit",
    )
    which.add_argument(
        "--export-account",
        type=Path,
        metavar="FILE",
        help="write everything Parley keeps about your account (profile, API keys, sessions, ratings, "
        "conversations) to FILE and exit",
    )
    which.add_argument(
        "--import",
        dest="import_file",
        type=Path,
        metavar="FILE",
        help="import the conversations of an export FILE (again is harmless: nothing is imported twice) and exit",
    )
    parser.add_argument("--agent", metavar="SLUG", help="start a new conversation with this agent (implies --new)")


def run(args: argparse.Namespace) -> int:
    """Run the terminal client with parsed arguments; returns the exit status."""
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    try:
        with asyncio.Runner() as runner:
            return ChatApp(args, runner).main()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unexpected environment: one line, no traceback
        if os.environ.get("PARLEY_DEBUG"):
            raise
        print(f"error: {exc.__class__.__name__}: {exc} (set PARLEY_DEBUG=1 for details)", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parley chat", description="Chat with a Parley agent in the terminal.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def tls_of(args: argparse.Namespace) -> Tls | None:
    """The TLS the options ask for; None for plaintext. ValueError for --cert without --key."""
    if not (args.tls or args.ca or args.cert or args.key):
        return None
    return Tls(args.ca, args.cert, args.key)


def describe(error: ParleyError, server: str, tls: Tls | None = None) -> str:
    """A one-line explanation of a failed call."""
    connection = explain_connection_failure(error, tls)
    if connection is not None:
        return f"cannot connect to the Parley server at {server}: {connection}"
    if error.code == grpc.StatusCode.UNAVAILABLE and not error.reason:
        return f"cannot reach the Parley server at {server} (is it running?)"
    if error.code == grpc.StatusCode.DEADLINE_EXCEEDED and not error.reason:
        return f"the Parley server at {server} did not answer in time"
    text = FRIENDLY_REASONS.get(error.reason) or error.message or error.code.name.lower().replace("_", " ")
    if error.field_violations:
        text += " (" + "; ".join(f"{f}: {d}" for f, d in error.field_violations.items()) + ")"
    if error.retry_after:
        text += f"; try again in {error.retry_after:.0f} s"
    return text


class TokenCache:
    """tokens.json: {"servers": {address: {email, access_token, refresh_token, ...}}}, mode 0600."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "tokens.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and isinstance(data.get("servers"), dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".tokens.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def load(self, server: str) -> tuple[Tokens, str] | None:
        """The cached tokens and email for server, if any."""
        entry = self._read().get("servers", {}).get(server)
        try:
            return Tokens.from_dict(entry), str(entry.get("email", ""))
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def save(self, server: str, tokens: Tokens | None, email: str | None = None) -> None:
        data = self._read() or {"servers": {}}
        servers = data["servers"]
        if tokens is None:
            if server not in servers:
                return
            del servers[server]
        else:
            previous = servers.get(server) if isinstance(servers.get(server), dict) else {}
            servers[server] = {"email": email or previous.get("email", ""), **tokens.to_dict()}
        self._write(data)


@dataclass
class Chat:
    """The conversation being chatted in, and the last messages of its active
    path (what /edit and /regenerate start from; empty until there is one)."""

    conversation: conversation_pb2.Conversation
    agent_name: str
    last_user_message_id: str = ""
    last_answer_id: str = ""

    def saw(self, message: conversation_pb2.Message) -> None:
        """Note a message of the active path, oldest first."""
        if message.role == conversation_pb2.MESSAGE_ROLE_USER:
            self.last_user_message_id = message.id
        elif message.role == conversation_pb2.MESSAGE_ROLE_ASSISTANT:
            self.last_answer_id = message.id


class ChatApp:
    """The interactive session. Prompts are synchronous (input, getpass); the
    network calls run on one event loop kept by an asyncio.Runner."""

    def __init__(
        self,
        args: argparse.Namespace,
        runner: asyncio.Runner,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        read_line: Callable[[str], str] = input,
        read_secret: Callable[[str], str] = getpass.getpass,
    ) -> None:
        self.args = args
        self.runner = runner
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.read_line = read_line
        self.read_secret = read_secret
        self.server: str = args.server or os.environ.get("PARLEY_GRPC_ADDR") or DEFAULT_SERVER
        config_dir = args.config_dir or Path(platformdirs.user_config_dir("parley"))
        self.cache = TokenCache(Path(config_dir))
        self.email = ""
        self.api_key: str | None = args.api_key or os.environ.get("PARLEY_API_KEY") or None
        self.tls: Tls | None = None
        self.agents: dict[str, agent_pb2.Agent] = {}
        self.client: ParleyClient | None = None
        self._mid_line = False  # an answer is being printed on the current line

    # -- plumbing --------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the session's event loop."""
        return self.runner.run(coro)

    def rpc(self, make: Callable[[], Awaitable[T]]) -> T:
        """Make a stub call on the event loop (grpc.aio calls must be created inside it)."""

        async def call() -> T:
            return await make()

        return self.runner.run(call())

    @property
    def api(self) -> ParleyClient:
        assert self.client is not None
        return self.client

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def error(self, text: str) -> None:
        self.out.flush()
        self.err.write(f"error: {text}\n")
        self.err.flush()

    def ask(self, prompt: str) -> str:
        try:
            return self.read_line(prompt)
        except (EOFError, KeyboardInterrupt):
            self.say()
            raise UserExit from None

    def _on_tokens(self, tokens: Tokens | None) -> None:
        # Refresh tokens rotate: persist every new pair at once.
        self.cache.save(self.server, tokens, self.email)

    async def _connect(self) -> ParleyClient:
        return ParleyClient(
            self.server,
            tls=self.tls,
            on_tokens=self._on_tokens,
            api_key=self.api_key,
            on_behalf_of=self.args.on_behalf_of,
        )

    # -- main ------------------------------------------------------------------

    def main(self) -> int:
        if self.args.agent and self.args.conversation:
            self.error("--agent picks the agent of a new conversation; it cannot go with --conversation")
            return 2
        if self.args.on_behalf_of and not self.api_key:
            self.error("--on-behalf-of needs a service account's API key (--api-key)")
            return 2
        if self.args.logout and self.api_key:
            self.error("--logout ends a session; an API key has none (revoke the key instead)")
            return 2
        try:
            self.tls = tls_of(self.args)
            self.client = self.call(self._connect())
        except (OSError, ValueError) as exc:
            self.error(f"cannot use the TLS files: {exc}")
            return 2
        try:
            if self.args.logout:
                return self.logout()
            self.sign_in()
            if self.args.export or self.args.export_account:
                return self.export(self.args.export or self.args.export_account, account=not self.args.export)
            if self.args.import_file:
                return self.import_file(self.args.import_file)
            chat = self.first_chat()
            if chat is None:
                return 0
            self.chat_loop(chat)
            return 0
        except UserExit:
            return 0
        except ParleyError as error:
            self.error(describe(error, self.server, self.tls))
            return 1
        finally:
            with contextlib.suppress(Exception):
                self.call(self.api.close())

    def logout(self) -> int:
        cached = self.cache.load(self.server)
        if cached is None:
            self.say(f"Not logged in to {self.server}.")
            return 0
        tokens, self.email = cached
        self.api.use_tokens(tokens.access_token, tokens.refresh_token)
        try:
            self.call(self.api.logout())
        except ParleyError as error:
            self.error(f"could not revoke the session on the server: {describe(error, self.server, self.tls)}")
        self.cache.save(self.server, None)
        self.say(f"Logged out{f' {self.email}' if self.email else ''} from {self.server}.")
        return 0

    # -- export and import -------------------------------------------------------

    def export(self, path: Path, *, account: bool) -> int:
        """Write the export to path, through a temporary file: an interrupted export leaves no partial FILE."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")

        async def write() -> int:
            chunks = self.api.export_account() if account else self.api.export_conversations()
            lines = 0
            with tmp.open("wb") as file:
                async for chunk in chunks:
                    file.write(chunk)
                    lines += chunk.count(b"\n")  # every record ends with one
            return lines

        try:
            lines = self.call(write())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.say(f"Wrote {lines} line{'s' if lines != 1 else ''} to {path}.")
        return 0

    def import_file(self, path: Path) -> int:
        """Import path; print each refused line and a summary. Exit status 1 when a line was refused."""
        with path.open("rb") as file:
            result = self.call(self.api.import_conversations(file_chunks(file)))
        for line in result.results:
            if line.outcome == portability_pb2.IMPORT_OUTCOME_FAILED:
                named = f" ({line.source_conversation_id})" if line.source_conversation_id else ""
                self.error(f"{path}:{line.line}{named}: {line.error}")
        self.say(
            f"Imported {result.created_count} conversation{'s' if result.created_count != 1 else ''}; "
            f"{result.skipped_count} already imported, {result.failed_count} refused."
        )
        return 1 if result.failed_count else 0

    # -- login -----------------------------------------------------------------

    def sign_in(self) -> auth_pb2.User:
        if self.api_key:
            return self.key_user()
        cached = self.cache.load(self.server)
        wanted = self.args.email or os.environ.get("PARLEY_EMAIL")
        if cached is not None and wanted and cached[1] and cached[1].lower() != wanted.lower():
            cached = None  # a saved session of another account: log in as the one asked for
        if cached is not None:
            tokens, self.email = cached
            self.api.use_tokens(tokens.access_token, tokens.refresh_token)
            try:
                # Refreshes (and re-caches) the pair if the access token expired.
                me: auth_pb2.GetCurrentUserResponse = self.rpc(
                    lambda: self.api.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
                )
                user = me.user
            except ParleyError as error:
                if error.code != grpc.StatusCode.UNAUTHENTICATED:
                    raise
                self.cache.save(self.server, None)
                self.say("Your saved session has expired; please log in again.")
            else:
                self.say(f"Logged in as {user.email} (saved session).")
                return user
        scripted = bool(os.environ.get("PARLEY_PASSWORD"))
        for attempt in range(1, LOGIN_ATTEMPTS + 1):
            email = self.args.email or os.environ.get("PARLEY_EMAIL") or self.ask("Email: ").strip()
            password = os.environ.get("PARLEY_PASSWORD") or self._secret("Password: ")
            self.email = email
            try:
                user = self.call(self.api.login(email, password))
            except ParleyError as error:
                if scripted or error.reason != "INVALID_CREDENTIALS" or attempt == LOGIN_ATTEMPTS:
                    raise
                self.error(describe(error, self.server, self.tls))
                continue
            # (the on_tokens callback has cached the new pair)
            self.say(f"Logged in as {user.email}.")
            return user
        raise AssertionError("unreachable")

    def key_user(self) -> auth_pb2.User:
        """Who the API key calls as (the user acted for, with --on-behalf-of)."""
        user: auth_pb2.User = self.rpc(lambda: self.api.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())).user
        self.say(f"Calling as {user.display_name or user.email} with an API key.")
        return user

    def _secret(self, prompt: str) -> str:
        try:
            return self.read_secret(prompt)
        except (EOFError, KeyboardInterrupt):
            self.say()
            raise UserExit from None

    # -- conversations ---------------------------------------------------------

    def load_agents(self) -> list[agent_pb2.Agent]:
        agents: list[agent_pb2.Agent] = []
        token = ""
        while True:
            request = agent_pb2.ListAgentsRequest(page_size=200, page_token=token)
            page = self.rpc(partial(self.api.agents.ListAgents, request))
            agents.extend(page.agents)
            token = page.next_page_token
            if not token:
                break
        self.agents = {agent.id: agent for agent in agents}
        return agents

    def agent_name(self, agent_id: str) -> str:
        if agent_id not in self.agents:
            self.load_agents()
        agent = self.agents.get(agent_id)
        return agent.name if agent else "agent"

    def first_chat(self) -> Chat | None:
        if self.args.conversation:
            conversation = self.rpc(
                lambda: self.api.conversations.GetConversation(
                    conversation_pb2.GetConversationRequest(conversation_id=self.args.conversation)
                )
            ).conversation
            return self.open(conversation)
        if self.args.new or self.args.agent:
            return self.new_chat(self.args.agent)
        return self.pick_chat(first=True)

    def pick_chat(self, *, first: bool) -> Chat | None:
        """List recent conversations and let the user choose one or a new one.
        Returns None when the user keeps the current one (empty answer)."""
        listed = self.rpc(
            lambda: self.api.conversations.ListConversations(
                conversation_pb2.ListConversationsRequest(page_size=RECENT_CONVERSATIONS, archived=False)
            )
        ).conversations
        if not listed:
            if first:
                self.say("No conversations yet; starting a new one.")
            return self.new_chat(None)
        self.say("Recent conversations:")
        for number, conversation in enumerate(listed, 1):
            when = conversation.update_time.ToDatetime(tzinfo=UTC).astimezone()
            title = conversation.title or "(untitled)"
            count = conversation.message_count
            self.say(
                f"  {number:>2}. {title[:40]:<40}  {self.agent_name(conversation.agent_id)}"
                f" · {count} message{'s' if count != 1 else ''} · {when:%Y-%m-%d %H:%M}"
            )
        self.say("   n. Start a new conversation")
        keep = "" if first else ", Enter to stay"
        while True:
            answer = self.ask(f"Choose [1-{len(listed)}, n{keep}]: ").strip().lower()
            if not answer and not first:
                return None
            if answer == "n":
                return self.new_chat(None)
            if answer.isdigit() and 1 <= int(answer) <= len(listed):
                return self.open(listed[int(answer) - 1])
            self.error("type one of the numbers, or n")

    def choose_agent(self, slug: str | None) -> agent_pb2.Agent:
        agents = [agent for agent in self.load_agents() if agent.enabled]
        if slug:
            for agent in agents:
                if agent.slug == slug:
                    if not agent.accessible:
                        raise ParleyError(grpc.StatusCode.PERMISSION_DENIED, f"you cannot use agent {slug!r}")
                    return agent
            known = ", ".join(a.slug for a in agents)
            raise ParleyError(grpc.StatusCode.NOT_FOUND, f"no agent {slug!r}; try one of {known}")
        usable = [agent for agent in agents if agent.accessible]
        if not usable:
            raise ParleyError(grpc.StatusCode.PERMISSION_DENIED, "no agent is available to you")
        if len(usable) == 1:
            return usable[0]
        self.say("Agents:")
        for number, agent in enumerate(usable, 1):
            about = f" - {agent.description}" if agent.description else ""
            self.say(f"  {number:>2}. {agent.name} ({agent.slug}){about}")
        while True:
            answer = self.ask(f"Choose an agent [1-{len(usable)}]: ").strip()
            if answer.isdigit() and 1 <= int(answer) <= len(usable):
                return usable[int(answer) - 1]
            for agent in usable:
                if agent.slug == answer:
                    return agent
            self.error("type one of the numbers")

    def new_chat(self, slug: str | None, agent: agent_pb2.Agent | None = None) -> Chat:
        agent = agent or self.choose_agent(slug)
        request = conversation_pb2.CreateConversationRequest(agent_id=agent.id)
        conversation = self.rpc(lambda: self.api.conversations.CreateConversation(request)).conversation
        self.say(f"New conversation with {agent.name}. Type /help for commands.")
        return Chat(conversation, agent.name)

    def open(self, conversation: conversation_pb2.Conversation) -> Chat:
        chat = Chat(conversation, self.agent_name(conversation.agent_id))
        title = conversation.title or "(untitled)"
        self.say(f"Conversation “{title}” with {chat.agent_name}. Type /help for commands.")
        self.show_history(chat)
        return chat

    def show_history(self, chat: Chat) -> None:
        recent: deque[conversation_pb2.Message] = deque(maxlen=HISTORY_SHOWN)
        total, token = 0, ""
        while True:
            request = conversation_pb2.ListMessagesRequest(
                conversation_id=chat.conversation.id, page_size=200, page_token=token
            )
            page = self.rpc(partial(self.api.conversations.ListMessages, request))
            recent.extend(page.messages)
            for message in page.messages:
                chat.saw(message)
            total += len(page.messages)
            token = page.next_page_token
            if not token:
                break
        if total > len(recent):
            self.say(f"({total - len(recent)} earlier messages not shown)")
        for message in recent:
            self.say(self.format_message(chat, message))

    @staticmethod
    def format_message(chat: Chat, message: conversation_pb2.Message) -> str:
        who = {conversation_pb2.MESSAGE_ROLE_USER: "you", conversation_pb2.MESSAGE_ROLE_SYSTEM: "system"}.get(
            message.role, chat.agent_name
        )
        note = {
            conversation_pb2.MESSAGE_STATE_CANCELLED: " [stopped]",
            conversation_pb2.MESSAGE_STATE_FAILED: f" [failed: {message.failure_reason or 'unknown error'}]",
            conversation_pb2.MESSAGE_STATE_STREAMING: " [still generating]",
        }.get(message.state, "")
        if message.sibling_count > 1:  # one of several versions: say which
            who += f" ({message.sibling_index + 1}/{message.sibling_count})"
        return f"{who}> {message.content}{note}"

    # -- chatting --------------------------------------------------------------

    def chat_loop(self, chat: Chat) -> None:
        while True:
            line = self.ask("you> ").strip()
            if not line:
                continue
            if line.startswith("/") and not line.startswith("//"):
                command = line.split()[0].lower()
                if command in ("/quit", "/exit", "/q"):
                    return
                if command == "/help":
                    self.say(HELP)
                elif command == "/regenerate":
                    self.regenerate(chat)
                elif command == "/edit":
                    self.edit(chat, line[len(command) :].strip())
                elif command in ("/new", "/list"):
                    try:
                        if command == "/new":
                            agent = self.agents.get(chat.conversation.agent_id)
                            chat = self.new_chat(None, agent) if agent else self.new_chat(None)
                        else:
                            chat = self.pick_chat(first=False) or chat
                    except ParleyError as error:
                        self.error(describe(error, self.server, self.tls))
                else:
                    self.error(f"unknown command {command} (type /help; start with // to send it as a message)")
                continue
            if line.startswith("//"):
                line = line[1:]
            self.send(chat, line)

    def regenerate(self, chat: Chat) -> None:
        if not chat.last_answer_id:
            self.error("there is no answer to regenerate yet")
            return
        answer_id = chat.last_answer_id
        self.answer(chat, lambda: self.api.regenerate(answer_id))

    def edit(self, chat: Chat, text: str) -> None:
        if not text:
            self.error("usage: /edit NEW TEXT (replaces your last message)")
        elif not chat.last_user_message_id:
            self.error("there is no message of yours to edit yet")
        else:
            message_id = chat.last_user_message_id
            self.answer(chat, lambda: self.api.edit_message(message_id, text))

    def send(self, chat: Chat, text: str) -> None:
        self.answer(chat, lambda: self.api.send_message(chat.conversation.id, text))

    def answer(self, chat: Chat, events: Callable[[], AsyncIterator[ChatEvent]]) -> None:
        """Stream the answer of an exchange that events() starts (send, regenerate or edit)."""
        try:
            with _quiet_terminal(sys.stdin):
                self.call(self._stream(chat, events))
        except ParleyError as error:
            if self._mid_line:
                self.write("\n")
            self.error(describe(error, self.server, self.tls))
        finally:
            self._mid_line = False

    async def _stream(self, chat: Chat, events: Callable[[], AsyncIterator[ChatEvent]]) -> None:
        """Print the answer as it streams; the first Ctrl-C asks the server to
        stop the generation (the stream then ends with `cancelled`), a second
        one stops waiting."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        accepted: asyncio.Future[str] = loop.create_future()
        interrupts = 0

        last = " "

        def note(text: str) -> None:
            self.write(("" if last.isspace() else " ") + text + "\n")

        async def consume() -> None:
            nonlocal last
            self.write(f"{chat.agent_name}> ")
            self._mid_line = True
            async for event in events():
                if isinstance(event, Accepted):
                    accepted.set_result(event.assistant_message_id)
                    chat.saw(event.user_message)
                    chat.last_answer_id = event.assistant_message_id
                elif isinstance(event, TextDelta):
                    self.write(event.text)
                    last = event.text[-1]
                elif isinstance(event, Completed):
                    self.write("\n")
                elif isinstance(event, Failed):
                    note(f"[failed: {event.reason}]")
                elif isinstance(event, Cancelled):
                    note("[stopped]")
            self._mid_line = False

        async def stopper() -> None:
            await stop.wait()
            message_id = await accepted
            try:
                await self.api.cancel(message_id)
            except ParleyError as error:
                self.write("\n")
                self.error(f"could not stop the answer: {describe(error, self.server, self.tls)}")
                consumer.cancel()

        def on_interrupt() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                stop.set()
            else:
                consumer.cancel()

        consumer = asyncio.create_task(consume())
        stopping = asyncio.create_task(stopper())
        installed = _add_sigint_handler(loop, on_interrupt)
        try:
            await consumer
        except asyncio.CancelledError:
            if interrupts == 0 and not stop.is_set():
                raise
            note("[stopped]")
            self._mid_line = False
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping


@contextlib.contextmanager
def _quiet_terminal(stream: TextIO) -> Iterator[None]:
    """While an answer streams, do not echo keys (type-ahead, ^C) into it."""
    try:
        import termios

        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, AttributeError, OSError, ValueError):
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | getattr(termios, "ECHOCTL", 0))
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def _add_sigint_handler(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> bool:
    """Route Ctrl-C to handler while an answer streams (False where the loop cannot, e.g. Windows)."""
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
