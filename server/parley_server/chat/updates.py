"""What the chat streams yield: domain updates that chat.convert turns into protobuf events.

One piece of streamed text has one name per stage:

- `GeneratedText` (agents.providers.base): what a provider produced next; no offset yet.
- `TextAppended` (events.schema): the bus event announcing that text was
  appended to a message at an offset, published to its conversation.
- `TextDelta` (here): a piece of a message's text at an offset, as a stream
  sends it. On the wire it is `parley.chat.v1.GenerationDelta` in SendMessage
  and ResumeStream (the message is the one the stream follows) and
  `parley.chat.v1.MessageDelta` in WatchConversation (which names the
  message); the Python client yields them as `TextDelta` and `MessageDelta`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from parley_server.conversations.views import MessageFields
from parley_server.db.models import Conversation, Message


@dataclass(frozen=True)
class Accepted:
    user_message: MessageFields
    assistant_message_id: uuid.UUID


@dataclass(frozen=True)
class TextDelta:
    """Text of message `message_id` starting at `offset`, in code points."""

    message_id: uuid.UUID
    offset: int
    text: str


@dataclass(frozen=True)
class Ended:
    """The final message: COMPLETE, CANCELLED or FAILED (with its partial text)."""

    message: MessageFields


ChatUpdate = Accepted | TextDelta | Ended
"""One update of SendMessage or ResumeStream."""


@dataclass(frozen=True)
class MessageCreated:
    """A message was added: a user message, or an assistant message in STREAMING."""

    message: Message


@dataclass(frozen=True)
class MessageCompleted:
    """A message reached its final state: COMPLETE, CANCELLED or FAILED."""

    message: Message


@dataclass(frozen=True)
class ConversationUpdated:
    """The conversation as it is now (the first update of a watch, then after each change)."""

    conversation: Conversation


@dataclass(frozen=True)
class ConversationDeleted:
    """The conversation is gone: the last update of a watch."""

    conversation_id: uuid.UUID


WatchUpdate = MessageCreated | TextDelta | MessageCompleted | ConversationUpdated | ConversationDeleted
"""One update of WatchConversation: one change each, never none (the names are the client's)."""
