"""The export format, parley.conversations.v1 (docs/export-format.md): records to JSON and back.

A conversation record is one JSON object on one line, self-contained: the
conversation, its agent (id, slug and name, so another server can find its
own agent), and every message with its place in the tree, its state and its
token usage. `format` names the version; a reader of v1 ignores keys it does
not know, so adding a key keeps v1, and only a change that would make v1
readers wrong needs v2.

Reading checks a record as CreateMessage checks a message, with each problem
named by its path (`messages[3].parent_id`), and turns it into the domain's
ImportedConversation; nothing here touches the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from parley_server.common.clock import utcnow
from parley_server.common.errors import InvalidArgument
from parley_server.common.validation import Violations
from parley_server.conversations.service import MAX_CONTENT_LENGTH, MAX_TITLE_LENGTH
from parley_server.db.models import MessageRole, MessageState

CONVERSATIONS_FORMAT = "parley.conversations.v1"
ACCOUNT_FORMAT = "parley.account.v1"
# One line (one conversation) at most; beyond it the line is refused unread.
MAX_LINE_BYTES = 10 * 1024 * 1024
MAX_MESSAGES = 10_000
MAX_SOURCE_ID_LENGTH = 100
MAX_FAILURE_REASON_LENGTH = 2000
MAX_AGENT_REF_LENGTH = 100
MAX_TOKENS = 2**63 - 1
# A streaming message was cut off by the export; nothing will finish it here.
_E = TypeVar("_E", MessageRole, MessageState)
INTERRUPTED = "interrupted: the answer was still being written when it was exported"


@dataclass(frozen=True)
class ImportedMessage:
    source_id: str
    parent_source_id: str | None
    role: MessageRole
    content: str
    state: MessageState
    failure_reason: str
    prompt_tokens: int
    completion_tokens: int
    create_time: datetime


@dataclass(frozen=True)
class ImportedConversation:
    """A checked conversation record: parents come before their children, ids are unique."""

    source_id: str
    agent_id: str
    agent_slug: str
    title: str
    archived: bool
    pinned: bool
    metadata: dict[str, str]
    create_time: datetime
    update_time: datetime
    active_source_id: str | None
    messages: list[ImportedMessage] = field(default_factory=list)


class NotAConversation(Exception):
    """A valid record of another kind (an account line): left alone."""


class InvalidRecord(Exception):
    """A line that is not a valid conversation record; nothing of it is stored."""

    def __init__(self, source_id: str, problems: str) -> None:
        super().__init__(problems)
        self.source_id = source_id
        self.problems = problems


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with microseconds, as every time in the format is written."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def dump_line(record: dict[str, Any]) -> bytes:
    """One record as one line of compact UTF-8 JSON."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def parse_conversation(data: bytes) -> ImportedConversation:
    """The record on one line, checked.

    Raises InvalidRecord naming every problem, NotAConversation for a record
    of another kind.
    """
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRecord("", f"line: is not valid UTF-8 JSON ({error})") from error
    if not isinstance(record, dict):
        raise InvalidRecord("", "line: must be a JSON object")
    source_id = record.get("id")
    source_id = source_id[:MAX_SOURCE_ID_LENGTH] if isinstance(source_id, str) else ""
    fmt = record.get("format")
    if fmt == ACCOUNT_FORMAT:
        raise NotAConversation
    if fmt != CONVERSATIONS_FORMAT:
        raise InvalidRecord(source_id, f"format: must be {CONVERSATIONS_FORMAT!r} (got {fmt!r})")
    try:
        return _Reader(Violations(), record).conversation()
    except InvalidArgument as error:
        problems = "; ".join(f"{item.field}: {item.description}" for item in error.violations)
        raise InvalidRecord(source_id, problems) from error


class _Reader:
    """Typed access to a record's keys, each mistake collected with its path."""

    def __init__(self, v: Violations, record: dict[str, Any]) -> None:
        self._v = v
        self._record = record
        self._now = utcnow()

    def conversation(self) -> ImportedConversation:
        v, r = self._v, self._record
        source_id = self._id("id", r.get("id"))
        agent_id = self._str("agent_id", r, MAX_AGENT_REF_LENGTH)
        agent_slug = self._str("agent_slug", r, MAX_AGENT_REF_LENGTH)
        if not agent_id and not agent_slug:
            v.add("agent_id", "agent_id or agent_slug is required")
        title = v.text("title", self._str("title", r, MAX_TITLE_LENGTH), max_length=MAX_TITLE_LENGTH)
        raw_messages = r.get("messages", [])
        if not isinstance(raw_messages, list):
            v.add("messages", "must be a list")
            raw_messages = []
        elif len(raw_messages) > MAX_MESSAGES:
            v.add("messages", f"must have at most {MAX_MESSAGES:,} messages")
            raw_messages = []
        messages: list[ImportedMessage] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_messages):
            message = self._message(index, raw, seen)
            if message is not None:
                messages.append(message)
        active = r.get("active_message_id")
        if active is not None and (not isinstance(active, str) or active not in seen):
            v.add("active_message_id", f"{active!r} is not a message of this conversation")
        conversation = ImportedConversation(
            source_id=source_id,
            agent_id=agent_id,
            agent_slug=agent_slug,
            title=title,
            archived=self._bool("archived", r),
            pinned=self._bool("pinned", r),
            metadata=self._metadata(r),
            create_time=self._time("create_time", r),
            update_time=self._time("update_time", r),
            active_source_id=active,
            messages=messages,
        )
        # After every field is read: each adds its own violations.
        v.raise_if_any()
        return conversation

    def _message(self, index: int, raw: object, seen: dict[str, int]) -> ImportedMessage | None:
        """messages[index], checked against the ids seen before it (its own is added to them)."""
        v, path = self._v, f"messages[{index}]"
        if not isinstance(raw, dict):
            v.add(path, "must be a JSON object")
            return None
        parent = raw.get("parent_id")
        if parent is not None and (not isinstance(parent, str) or parent not in seen):
            v.add(
                f"{path}.parent_id",
                f"{parent!r} is not an earlier message of this conversation "
                "(a parent must come before its children, so unknown parents and cycles are refused)",
            )
        source_id = self._id(f"{path}.id", raw.get("id"))
        if source_id in seen:
            v.add(f"{path}.id", f"{source_id!r} duplicates messages[{seen[source_id]}].id")
        elif source_id:
            seen[source_id] = index
        role = self._enum(f"{path}.role", raw.get("role"), MessageRole)
        state = self._enum(f"{path}.state", raw.get("state"), MessageState)
        content = self._str(f"{path}.content", raw, MAX_CONTENT_LENGTH)
        if "\x00" in content:
            v.add(f"{path}.content", "must not contain NUL characters")
        failure_reason = self._str(f"{path}.failure_reason", raw, MAX_FAILURE_REASON_LENGTH)
        if state is MessageState.STREAMING:
            state, failure_reason = MessageState.FAILED, failure_reason or INTERRUPTED
        if role is None or state is None:
            return None
        return ImportedMessage(
            source_id=source_id,
            parent_source_id=parent,
            role=role,
            content=content,
            state=state,
            failure_reason=failure_reason,
            prompt_tokens=self._tokens(f"{path}.prompt_tokens", raw.get("prompt_tokens", 0)),
            completion_tokens=self._tokens(f"{path}.completion_tokens", raw.get("completion_tokens", 0)),
            create_time=self._time(f"{path}.create_time", raw),
        )

    def _id(self, path: str, value: object) -> str:
        if not isinstance(value, str) or not value:
            self._v.add(path, "is required (a non-empty string)")
            return ""
        if len(value) > MAX_SOURCE_ID_LENGTH:
            self._v.add(path, f"must be at most {MAX_SOURCE_ID_LENGTH} characters")
        return value

    def _str(self, path: str, record: dict[str, Any], max_length: int) -> str:
        value = record.get(_key(path), "")
        if value is None:
            return ""
        if not isinstance(value, str):
            self._v.add(path, "must be a string")
            return ""
        if len(value) > max_length:
            self._v.add(path, f"must be at most {max_length:,} characters")
            return ""
        try:
            value.encode()
        except UnicodeEncodeError:
            self._v.add(path, "must be valid Unicode (a lone surrogate escape is not)")
            return ""
        return value

    def _metadata(self, record: dict[str, Any]) -> dict[str, str]:
        """The conversation's key/value pairs, with ConversationService's limits; absent = none."""
        value = record.get("metadata") or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self._v.add("metadata", "must be an object of strings")
            return {}
        return self._v.metadata("metadata", value)

    def _bool(self, path: str, record: dict[str, Any]) -> bool:
        value = record.get(_key(path), False)
        if not isinstance(value, bool):
            self._v.add(path, "must be true or false")
            return False
        return value

    def _tokens(self, path: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
            self._v.add(path, "must be a non-negative integer")
            return 0
        return value

    def _enum(self, path: str, value: object, kind: type[_E]) -> _E | None:
        try:
            return kind(value)
        except ValueError:
            names = ", ".join(repr(member.value) for member in kind)
            self._v.add(path, f"must be one of {names} (got {value!r})")
            return None

    def _time(self, path: str, record: dict[str, Any]) -> datetime:
        """An RFC 3339 time; missing is now, one without a zone is UTC."""
        value = record.get(_key(path))
        if value is None:
            return self._now
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            self._v.add(path, "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
            return self._now
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _key(path: str) -> str:
    """The record key a path ends in: `messages[3].content` -> `content`."""
    return path.rsplit(".", 1)[-1]
