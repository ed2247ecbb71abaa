"""What the chat streams yield: domain updates that the handlers turn into protobuf events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from parley_server.db.models import Conversation, Message


@dataclass(frozen=True)
class Accepted:
    user_message: Message
    assistant_message_id: uuid.UUID


@dataclass(frozen=True)
class TextChunk:
    message_id: uuid.UUID
    offset: int
    text: str


@dataclass(frozen=True)
class Ended:
    """The final message: COMPLETE, CANCELLED or FAILED (with its partial text)."""

    message: Message


ChatUpdate = Accepted | TextChunk | Ended


@dataclass(frozen=True)
class WatchUpdate:
    """One change to a watched conversation; exactly one field is set."""

    message_created: Message | None = None
    delta: TextChunk | None = None
    message_completed: Message | None = None
    conversation_updated: Conversation | None = None
    conversation_deleted: uuid.UUID | None = None
