"""Typed events yielded by ParleyClient.send_message / resume / watch.

Small frozen dataclasses instead of protobuf oneofs, so callers can `match`
on them and type checkers know which fields exist:

    async for event in client.send_message(conversation_id, "Hello"):
        match event:
            case TextDelta(text=text):
                print(text, end="", flush=True)
            case Completed(message=message):
                print()
            case Failed(reason=reason):
                print(f"[failed: {reason}]")
            case Cancelled():
                print("[stopped]")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from parley.conversation.v1.conversation_pb2 import Conversation, Message

__all__ = [
    "Accepted",
    "Cancelled",
    "ChatEvent",
    "Completed",
    "ConversationDeleted",
    "ConversationUpdated",
    "Failed",
    "MessageCompleted",
    "MessageCreated",
    "MessageDelta",
    "TextDelta",
    "Usage",
    "WatchEvent",
]


@dataclass(frozen=True, slots=True)
class Accepted:
    """The user message is stored and generation started (first event of send_message)."""

    user_message: Message
    # Use it with resume() and cancel().
    assistant_message_id: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Generated text (parley.chat.v1.GenerationDelta); offset is where it starts in the answer, in code points.

    The client guarantees offsets are contiguous: offset == the total length
    of the text yielded before, even across a transparent reconnect."""

    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of the generation (at most once, before the terminal event)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Completed:
    """Terminal: the answer finished; message is the final assistant message."""

    message: Message


@dataclass(frozen=True, slots=True)
class Failed:
    """Terminal: generation failed; message holds the partial text (state FAILED)."""

    reason: str
    message: Message


@dataclass(frozen=True, slots=True)
class Cancelled:
    """Terminal: stopped by CancelGeneration; message holds the partial text (state CANCELLED)."""

    message: Message


ChatEvent: TypeAlias = Accepted | TextDelta | Usage | Completed | Failed | Cancelled
"""One event of send_message() / resume()."""

TERMINAL_EVENTS = (Completed, Failed, Cancelled)


@dataclass(frozen=True, slots=True)
class MessageCreated:
    """A message was added (a user message, or an assistant message in STREAMING)."""

    message: Message


@dataclass(frozen=True, slots=True)
class MessageDelta:
    """Generated text of an assistant message of the watched conversation (parley.chat.v1.MessageDelta):
    a TextDelta that names its message, since a watch follows several."""

    message_id: str
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class MessageCompleted:
    """A message reached its final state: COMPLETE, CANCELLED or FAILED."""

    message: Message


@dataclass(frozen=True, slots=True)
class ConversationUpdated:
    """The conversation changed (title, archived, pinned, cleared...)."""

    conversation: Conversation


@dataclass(frozen=True, slots=True)
class ConversationDeleted:
    """The conversation was deleted; the watch ends after this event."""

    conversation_id: str


WatchEvent: TypeAlias = MessageCreated | MessageDelta | MessageCompleted | ConversationUpdated | ConversationDeleted
"""One event of watch()."""
