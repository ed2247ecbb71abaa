"""Events about conversations, as they travel between tasks and replicas.

Events are small on purpose: they carry ids and, for deltas, the new text
with its offset. Anything bigger (a whole message, a conversation) is read
from PostgreSQL by whoever receives the event, so an event always fits in a
NOTIFY payload (deltas are split when they would not).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from parley_server.db.models import MessageState


@dataclass(frozen=True)
class MessageCreated:
    conversation_id: uuid.UUID
    message_id: uuid.UUID


@dataclass(frozen=True)
class TextAppended:
    """Text appended to a streaming message at character offset `offset`.

    The bus's form of a TextDelta (chat.updates): the same piece of text, plus
    the conversation it is published to. Its tag in NOTIFY payloads stays
    "delta", so replicas of the previous version read it during an upgrade.
    """

    conversation_id: uuid.UUID
    message_id: uuid.UUID
    offset: int
    text: str


@dataclass(frozen=True)
class Finished:
    """A generation ended; the final message (state, text, usage) is stored."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID
    state: MessageState


@dataclass(frozen=True)
class ConversationChanged:
    """Title, flags or counters changed."""

    conversation_id: uuid.UUID


@dataclass(frozen=True)
class ConversationDeleted:
    conversation_id: uuid.UUID


@dataclass(frozen=True)
class CancelRequested:
    """Ask whichever replica runs this generation to stop it."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID


Event = MessageCreated | TextAppended | Finished | ConversationChanged | ConversationDeleted | CancelRequested

_TYPES: dict[str, type[Any]] = {
    "created": MessageCreated,
    "delta": TextAppended,
    "finished": Finished,
    "changed": ConversationChanged,
    "deleted": ConversationDeleted,
    "cancel": CancelRequested,
}
_TAGS = {cls: tag for tag, cls in _TYPES.items()}


def to_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"t": _TAGS[type(event)]}
    for key, value in event.__dict__.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, MessageState):
            value = value.value
        data[key] = value
    return data


def from_json(data: dict[str, Any]) -> Event:
    cls = _TYPES[data.pop("t")]
    for key in ("conversation_id", "message_id"):
        if key in data:
            data[key] = uuid.UUID(data[key])
    if "state" in data:
        data["state"] = MessageState(data["state"])
    event: Event = cls(**data)
    return event


def encode_batch(origin: str, events: list[Event], limit: int) -> list[str]:
    """Pack events into JSON payloads of at most `limit` bytes, splitting long deltas.

    Each event is serialised once and payloads are assembled from the pieces
    (json.dumps escapes to ASCII, so characters are bytes): a flush carries
    thousands of deltas when many streams run, and must stay linear in them.
    """
    head = _batch_head(origin)
    payloads: list[str] = []
    current: list[str] = []
    size = len(head) + 2  # head + "]}"
    for event in _split_deltas(events, limit // 2):
        item = json.dumps(to_json(event), separators=(",", ":"))
        if current and size + 1 + len(item) > limit:
            payloads.append(head + ",".join(current) + "]}")
            current, size = [], len(head) + 2
        size += len(item) + (1 if current else 0)
        current.append(item)
    if current:
        payloads.append(head + ",".join(current) + "]}")
    return payloads


def is_from(payload: str, origin: str) -> bool:
    """Whether payload was sent by origin (checked without parsing the rest)."""
    return payload.startswith(_batch_head(origin))


def decode_batch(payload: str) -> tuple[str, list[Event]]:
    data = json.loads(payload)
    return data["o"], [from_json(item) for item in data["e"]]


def _batch_head(origin: str) -> str:
    return json.dumps({"o": origin}, separators=(",", ":"))[:-1] + ',"e":['


def _split_deltas(events: list[Event], max_bytes: int) -> list[Event]:
    """Deltas whose text could overflow a payload become several consecutive deltas.

    Sizes are bounded in characters by max_bytes // 6: JSON may escape one
    character into up to six bytes (\\uXXXX), so the bound holds for any text.
    """
    max_chars = max(1, max_bytes // 6)
    result: list[Event] = []
    for event in events:
        if isinstance(event, TextAppended) and len(event.text) > max_chars:
            for start in range(0, len(event.text), max_chars):
                result.append(
                    TextAppended(
                        event.conversation_id,
                        event.message_id,
                        event.offset + start,
                        event.text[start : start + max_chars],
                    )
                )
        else:
            result.append(event)
    return result
