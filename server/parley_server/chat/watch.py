"""WatchConversation: every change of one conversation, none missed, each once.

Invariants (chat.proto promises them):
- The subscription exists before the conversation is read, and that read is
  the first update: every change after it reaches the watcher.
- A watch remembers what it told its watcher: the messages added since it
  began that it announced, how much text of each unfinished message it sent,
  and the messages it reported finished. Live deltas are trimmed against
  that and gaps are filled from the stored text, so the text of a message
  arrives contiguous from offset 0 (a message that was already streaming
  when the watch began gets its text so far first).
- When the bus loses events (the subscription yields None: a watcher too
  slow, or a lost LISTEN connection), the watch catches up from stored state
  with exactly what the watcher missed: message_created for each message
  added meanwhile, a delta with each message's missing text,
  message_completed for each that finished, then the conversation if it
  differs from the last one sent, or conversation_deleted if it is gone.
  The subscription also yields None after a silence, so a watch re-reads
  stored state now and then; when nothing was missed, that sends nothing.

Messages are recognised as "added since the watch began" by their seq:
every insert of a message holds its conversation's row lock until commit,
so within one conversation seq order is commit order, and the largest seq
read at the start splits old from new.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select

from parley_server.chat.generations import GenerationManager
from parley_server.chat.updates import (
    ConversationDeleted,
    ConversationUpdated,
    MessageCompleted,
    MessageCreated,
    TextDelta,
    WatchUpdate,
)
from parley_server.common.caller import Caller
from parley_server.common.errors import NotFound
from parley_server.conversations.ownership import owned_conversation
from parley_server.db.database import Database
from parley_server.db.models import FINAL_STATES, Conversation, Message, MessageRole, MessageState
from parley_server.events import schema as events
from parley_server.events.bus import Subscription


@dataclass
class _Told:
    """What the watcher has been told so far."""

    # Messages with a larger seq were added after the watch began, or after
    # its last catch-up (which announced every one up to it).
    after_seq: int
    # Unfinished messages the watcher follows -> code points of their text it has.
    text_sent: dict[uuid.UUID, int]
    # Messages added since the watch began that it announced.
    announced: set[uuid.UUID] = field(default_factory=set)
    # Messages it reported finished.
    finished: set[uuid.UUID] = field(default_factory=set)
    # The stored columns of the conversation it sent last.
    conversation: tuple[object, ...] = ()


class ConversationWatch:
    def __init__(self, database: Database, generations: GenerationManager, caller: Caller, cid: uuid.UUID) -> None:
        self._db = database
        self._generations = generations
        self._caller = caller
        self._cid = cid

    async def follow(self, subscription: Subscription) -> AsyncIterator[WatchUpdate]:
        """The conversation now, then its changes until it is deleted (see module doc)."""
        async with self._db.transaction() as db:
            conversation = await owned_conversation(db, self._cid, self._caller.user_id)
            after_seq = await db.scalar(
                select(func.coalesce(func.max(Message.seq), 0)).where(Message.conversation_id == self._cid)
            )
            streaming = await db.scalars(
                select(Message.id).where(Message.conversation_id == self._cid, Message.state == MessageState.STREAMING)
            )
            told = _Told(int(after_seq or 0), {message_id: 0 for message_id in streaming})
        yield self._conversation_updated(conversation, told)
        while True:
            event = await subscription.next()
            updates = await (self._catch_up(told) if event is None else self._updates(event, told))
            for update in updates:
                yield update
                if isinstance(update, ConversationDeleted):
                    return

    async def _updates(self, event: events.Event, told: _Told) -> list[WatchUpdate]:
        if isinstance(event, events.TextAppended):
            return await self._delta(event, told)
        if isinstance(event, events.ConversationDeleted):
            return [ConversationDeleted(self._cid)]
        if isinstance(event, events.ConversationChanged):
            conversation = await self._conversation()
            return [self._conversation_updated(conversation, told)] if conversation else []
        if isinstance(event, (events.MessageCreated, events.Finished)):
            async with self._db.transaction() as db:
                message = await db.get(Message, event.message_id)
            if message is None:
                return []  # deleted meanwhile (ClearMessages); its conversation update follows
            if isinstance(event, events.MessageCreated):
                return self._created(message, told)
            return self._completed(message, told)
        return []

    async def _delta(self, event: events.TextAppended, told: _Told) -> list[WatchUpdate]:
        """The part of a live delta the watcher lacks; a gap before it is filled from the stored text."""
        if event.message_id in told.finished:
            return []
        sent = told.text_sent.get(event.message_id, 0)
        deltas: list[WatchUpdate] = []
        if event.offset > sent:
            text = await self._text(event.message_id)
            if text is not None and len(text) > sent:
                deltas.append(TextDelta(event.message_id, sent, text[sent:]))
                sent = len(text)
        end = event.offset + len(event.text)
        if event.offset <= sent < end:
            deltas.append(TextDelta(event.message_id, sent, event.text[sent - event.offset :]))
            sent = end
        told.text_sent[event.message_id] = sent
        return deltas

    def _created(self, message: Message, told: _Told) -> list[WatchUpdate]:
        if message.id in told.announced:
            return []
        told.announced.add(message.id)
        if message.role is MessageRole.ASSISTANT:
            # The text so far travels in the message itself (all of it, if the
            # answer ended before it was read): deltas continue after it.
            told.text_sent[message.id] = max(told.text_sent.get(message.id, 0), len(message.content))
        return [MessageCreated(message)]

    def _completed(self, message: Message, told: _Told) -> list[WatchUpdate]:
        """The final message, after the text the watcher still lacks (its deltas add up to the whole)."""
        if message.id in told.finished or message.state not in FINAL_STATES:
            return []
        told.finished.add(message.id)
        sent = told.text_sent.pop(message.id, None)
        rest = message.content[sent:] if sent is not None else ""
        missing: list[WatchUpdate] = [TextDelta(message.id, sent or 0, rest)] if rest else []
        return [*missing, MessageCompleted(message)]

    async def _catch_up(self, told: _Told) -> list[WatchUpdate]:
        """Events were lost: what the watcher missed, read from stored state."""
        async with self._db.transaction() as db:
            try:
                conversation = await owned_conversation(db, self._cid, self._caller.user_id)
            except NotFound:
                return [ConversationDeleted(self._cid)]
            followed = list(told.text_sent)
            messages = (
                await db.scalars(
                    select(Message)
                    .where(
                        Message.conversation_id == self._cid,
                        or_(Message.seq > told.after_seq, Message.id.in_(followed)),
                    )
                    .order_by(Message.seq)
                )
            ).all()
        updates: list[WatchUpdate] = []
        for message in messages:
            if message.id in told.finished:
                continue
            if message.seq > told.after_seq and message.id not in told.announced:
                updates += self._created(message, told)
            if message.role is not MessageRole.ASSISTANT:
                continue  # added complete: there is nothing more to tell
            if message.state in FINAL_STATES:
                updates += self._completed(message, told)
            elif message.id in told.text_sent:
                sent = told.text_sent[message.id]
                live = self._generations.snapshot(message.id)
                text = message.content if live is None else live
                if len(text) > sent:
                    updates.append(TextDelta(message.id, sent, text[sent:]))
                    told.text_sent[message.id] = len(text)
        # Every message up to the last one read is now announced: the next
        # catch-up (a silence comes every WATCH_RECHECK_SECONDS) reads only
        # newer ones, not all that were added since the watch began.
        if messages:
            told.after_seq = max(told.after_seq, messages[-1].seq)
        # Followed messages deleted meanwhile (ClearMessages) are no longer followed.
        present = {message.id for message in messages}
        for gone in [message_id for message_id in told.text_sent if message_id not in present]:
            del told.text_sent[gone]
        if _columns(conversation) != told.conversation:
            updates.append(self._conversation_updated(conversation, told))
        return updates

    @staticmethod
    def _conversation_updated(conversation: Conversation, told: _Told) -> ConversationUpdated:
        told.conversation = _columns(conversation)
        return ConversationUpdated(conversation)

    async def _text(self, message_id: uuid.UUID) -> str | None:
        """The message's text so far: this process's buffer if it generates it, else the stored row."""
        live = self._generations.snapshot(message_id)
        if live is not None:
            return live
        async with self._db.transaction() as db:
            return await db.scalar(select(Message.content).where(Message.id == message_id))

    async def _conversation(self) -> Conversation | None:
        async with self._db.transaction() as db:
            try:
                return await owned_conversation(db, self._cid, self._caller.user_id)
            except NotFound:
                return None


def _columns(conversation: Conversation) -> tuple[object, ...]:
    """The conversation's stored values, to tell whether it changed since it was sent."""
    return tuple(getattr(conversation, column.key) for column in Conversation.__mapper__.column_attrs)
