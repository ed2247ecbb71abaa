"""ChatService rules: send, resume, cancel and watch, over decoupled generations.

Every stream a client holds is a *follower*: it replays what is already
generated (from this process's buffer when the generation runs here, from
PostgreSQL otherwise) and then continues with live deltas from the event bus.
Deltas carry offsets, so the follower trims overlaps and notices gaps at the
seam between stored and live text; after a gap or a lagging subscription it
re-reads the stored text and carries on, so the client sees each character
exactly once and in order. A follower that hears nothing for
FOLLOW_RECHECK_SECONDS (up to half as long again) re-reads too: an end
announced while the database (and with it NOTIFY) was away, or a generation
nobody runs any more, is then seen in the stored row, so no stream waits
forever on a message nobody generates. A watch re-reads the same way after
WATCH_RECHECK_SECONDS of silence: an event another replica could not NOTIFY
reaches its watchers late, never not at all.

A follower sends at most one update per frame (`frame_interval`, the
setting PARLEY_STREAM_FRAME_MS): the first text goes out as soon as it is
generated, and whatever arrives within a frame of the last update waits for
the frame's end and travels with the rest as one delta. gRPC's cost is per
message, so this bounds what a stream costs whatever the model's speed. It
also makes a burst of streams starve the server's intake of new calls less
often: with one message per word, 1,000 streams of 20 words a second
opened at once made grpc.aio take the last calls in many seconds late in
most rounds, with a 100 ms frame in few (scripts/bench_chat.py;
docs/performance-log.md). Ten updates a second still read as continuous text; the
price is that a word may wait up to a frame. A frame whose sleep ended late
(the event loop behind: more work than CPU) makes the next one longer by
as much (stretched_frame), so a saturated server sends fewer messages
until it keeps up, rather than falling further behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from asyncpg import UniqueViolationError
from sqlalchemy import func, select, update

from parley_server.agents.access_rules import daily_quota, rule, utc_day
from parley_server.agents.access_service import quota_exceeded, require_allowed
from parley_server.agents.providers.base import ChatTurn
from parley_server.agents.registry import AgentRegistry
from parley_server.chat import sql
from parley_server.chat.generations import GenerationManager, GenerationSpec, Outcome
from parley_server.chat.updates import Accepted, ChatUpdate, Ended, TextDelta, WatchUpdate
from parley_server.chat.watch import ConversationWatch
from parley_server.common.activity import Activity
from parley_server.common.caller import Caller
from parley_server.common.clock import utcnow
from parley_server.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Reason,
    Unavailable,
)
from parley_server.common.validation import Violations, only_uuid
from parley_server.conversations.ownership import conversation_not_found, message_not_found, owned_message
from parley_server.conversations.service import (
    DEFAULT_HISTORY_CHARS,
    DEFAULT_HISTORY_MESSAGES,
    ConversationService,
    message_content,
)
from parley_server.conversations.views import MessageFields, MessageView
from parley_server.db.batching import Batcher
from parley_server.db.database import Database, rowcount
from parley_server.db.models import FINAL_STATES, Message, MessageRole, MessageState
from parley_server.events.bus import EventBus
from parley_server.events.schema import (
    CancelRequested,
    ConversationChanged,
    ConversationDeleted,
    Finished,
    MessageCreated,
    TextAppended,
)

log = logging.getLogger(__name__)

# How long CancelGeneration waits for the owning replica to confirm the stop
# before deciding the owner is gone and cancelling in the database itself.
CANCEL_CONFIRM_SECONDS = 3.0
# The stored text of a generation running on another replica trails its live
# deltas by up to one persist interval (plus the NOTIFY hop): a resume offset
# beyond it is OUT_OF_RANGE only once this much longer has passed.
OFFSET_SETTLE_SLACK_SECONDS = 1.0
# A follower re-reads the message after this long without events (see the module doc).
FOLLOW_RECHECK_SECONDS = 5.0
# A watch re-reads its conversation after this long without events (see the
# module doc); longer than a follower's, as watches sit idle for hours.
WATCH_RECHECK_SECONDS = 30.0
# A follower's frame stretches to at most this many times the set one (see stretched_frame).
MAX_FRAME_STRETCH = 10
# Exchange starts read their facts and write their messages in batches
# (db/batching.py): at most this many of each in flight per process, of at
# most START_BATCH_LIMIT starts each.
START_BATCHES_IN_FLIGHT = 2
START_BATCH_LIMIT = 256


def stretched_frame(frame: float, late: float) -> float:
    """The frame after a frame's sleep that ended `late` seconds after it was due.

    A sleep that overran shows the event loop is behind: the process has
    more to do than CPU to do it. The next frame is longer by as much (up to
    MAX_FRAME_STRETCH frames), so a saturated server sends fewer, larger
    deltas, spending less on messages and more on taking new calls and
    generating; once sleeps end on time again, the frame is the set one.
    """
    return min(frame + max(late, 0.0), frame * MAX_FRAME_STRETCH)


@dataclass(frozen=True)
class _Turn:
    """What an exchange adds to a conversation's message tree before the answer.

    content is the new user message's text; None regenerates: the answer is
    a new sibling of the answer sibling_of, to the user message `answered`.
    The first new message is appended after the active leaf, or with
    sibling_of becomes that message's sibling (an edit, a regeneration).
    """

    content: str | None
    sibling_of: uuid.UUID | None = None
    answered: MessageView | None = None


class _Start(NamedTuple):
    """A start whose facts are wanted: one element of each of sql.EXCHANGE_FACTS' arrays."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    scope: str
    request_id: str
    at: datetime
    day: date


class _NewExchange(NamedTuple):
    """A start whose facts allowed it: one element of each of sql.START_EXCHANGES' arrays."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    agent_id: uuid.UUID
    user_message_id: uuid.UUID | None
    content: str | None
    assistant_id: uuid.UUID
    sibling_of: uuid.UUID | None
    at: datetime
    day: date
    quota: int | None
    scope: str
    request_id: str

    def locks(self) -> tuple[Hashable, ...]:
        """The rows its write changes that others' may too: its conversation and,
        with a quota, its usage row. No two starts in a batch share one, so the
        batch's rows are independent (sql.START_EXCHANGES)."""
        if self.quota is None:
            return (self.conversation_id,)
        return self.conversation_id, (self.user_id, self.agent_id, self.day)


@dataclass(frozen=True)
class _Target:
    """The message a regeneration or an edit starts from, and its parent (None for a root)."""

    conversation_id: uuid.UUID
    role: MessageRole
    state: MessageState
    parent: MessageView | None


@dataclass(frozen=True)
class _Started:
    """A new exchange, stored: its generation is yet to be launched."""

    user_message: MessageView
    user_message_is_new: bool
    assistant_id: uuid.UUID
    spec: GenerationSpec


class ChatService:
    def __init__(
        self,
        database: Database,
        bus: EventBus,
        registry: AgentRegistry,
        conversations: ConversationService,
        *,
        activity: Activity,
        generation_timeout_seconds: float,
        persist_interval: float = 0.5,
        frame_interval: float = 0.1,
        sweep_interval: float = 10.0,
    ) -> None:
        self._db = database
        self._bus = bus
        self._registry = registry
        self._conversations = conversations
        self.generations = GenerationManager(
            database,
            bus,
            on_finished=self._on_finished,
            activity=activity,
            timeout_seconds=generation_timeout_seconds,
            persist_interval=persist_interval,
            sweep_interval=sweep_interval,
        )
        self._activity = activity
        self._persist_interval = persist_interval
        self._frame_interval = frame_interval
        # Bumped by close_watches: a watch started before ends at its next wake-up.
        self._watch_epoch = 0
        # Reads never conflict, so any two starts may share a batch.
        self._facts: Batcher[_Start, tuple[Any, ...] | None] = Batcher(
            self._read_facts, keys=lambda start: (), max_batch=START_BATCH_LIMIT, max_in_flight=START_BATCHES_IN_FLIGHT
        )
        self._writes: Batcher[_NewExchange, tuple[Any, ...]] = Batcher(
            self._write_starts,
            keys=_NewExchange.locks,
            max_batch=START_BATCH_LIMIT,
            max_in_flight=START_BATCHES_IN_FLIGHT,
        )

    async def start(self) -> None:
        await self.generations.start()

    async def stop(self, grace: float) -> None:
        await self.generations.stop(grace)

    def close_watches(self) -> None:
        """End every WatchConversation with UNAVAILABLE (the client watches again,
        elsewhere): watches never end by themselves, and shutdown must not wait
        out its grace period for them once the real work has drained."""
        self._watch_epoch += 1
        self._bus.interrupt_subscribers()

    # -- SendMessage, RegenerateMessage, EditMessage ------------------------

    async def send_message(
        self, caller: Caller, conversation_id: str, content: str, request_id: str
    ) -> AsyncIterator[ChatUpdate]:
        v = Violations()
        cid = v.uuid("conversation_id", conversation_id)
        content = message_content(v, "content", content)
        request_id = v.request_id("request_id", request_id)
        v.raise_if_any()
        assert cid is not None
        async for chat_update in self._exchange(caller, cid, request_id, _Turn(content)):
            yield chat_update

    async def regenerate_message(self, caller: Caller, message_id: str, request_id: str) -> AsyncIterator[ChatUpdate]:
        """A new answer to the user message an answer answers: its sibling, streamed like SendMessage's."""
        v = Violations()
        mid = v.uuid("message_id", message_id)
        request_id = v.request_id("request_id", request_id)
        v.raise_if_any()
        assert mid is not None
        target = await self._exchange_target(caller, mid)
        if (
            target.role is not MessageRole.ASSISTANT
            or target.parent is None
            or target.parent.role is not MessageRole.USER
        ):
            raise InvalidArgument(
                [FieldViolation("message_id", "is not an answer to a user message; only answers are regenerated")],
                reason=Reason.NOT_A_GENERATION,
            )
        if target.state is MessageState.STREAMING:
            raise FailedPrecondition(
                "the answer is still being generated; cancel it or wait for its end", reason=Reason.MESSAGE_STREAMING
            )
        turn = _Turn(None, sibling_of=mid, answered=target.parent)
        async for chat_update in self._exchange(caller, target.conversation_id, request_id, turn):
            yield chat_update

    async def edit_message(
        self, caller: Caller, message_id: str, content: str, request_id: str
    ) -> AsyncIterator[ChatUpdate]:
        """A new version of a user message (its sibling) and the answer to it, streamed like SendMessage's."""
        v = Violations()
        mid = v.uuid("message_id", message_id)
        content = message_content(v, "content", content)
        request_id = v.request_id("request_id", request_id)
        v.raise_if_any()
        assert mid is not None
        target = await self._exchange_target(caller, mid)
        if target.role is not MessageRole.USER:
            raise InvalidArgument(
                [FieldViolation("message_id", "is not a user message; only the user's messages are edited")],
                reason=Reason.NOT_A_USER_MESSAGE,
            )
        async for chat_update in self._exchange(caller, target.conversation_id, request_id, _Turn(content, mid)):
            yield chat_update

    async def _exchange_target(self, caller: Caller, message_id: uuid.UUID) -> _Target:
        """The caller's message an exchange starts from, or NOT_FOUND."""
        found = await self._db.fetch(sql.EXCHANGE_TARGET, message_id, caller.user_id, into=tuple)
        if not found:
            raise message_not_found()
        cid, role, state = found[0][:3]
        parent = found[0][3:]
        return _Target(
            cid, MessageRole(role), MessageState(state), None if parent[0] is None else MessageView.of(parent)
        )

    async def _exchange(
        self, caller: Caller, cid: uuid.UUID, request_id: str, turn: _Turn
    ) -> AsyncIterator[ChatUpdate]:
        """Start the exchange (or re-attach to the one request_id started), launch
        its generation, and stream it: accepted, then the answer."""
        started = await self._start_exchange(caller, cid, request_id, turn)
        if isinstance(started, Accepted):
            accepted = started
        else:
            accepted = Accepted(started.user_message, started.assistant_id)
            if started.user_message_is_new:
                self._bus.publish(MessageCreated(cid, started.user_message.id))
            self._bus.publish(MessageCreated(cid, started.assistant_id))
            self._bus.publish(ConversationChanged(cid))
            self.generations.launch(started.spec)
        yield accepted
        async for chat_update in self._follow(cid, accepted.assistant_message_id, 0):
            yield chat_update

    async def _start_exchange(
        self, caller: Caller, cid: uuid.UUID, request_id: str, turn: _Turn
    ) -> _Started | Accepted:
        """Store the exchange's messages; or, for a request_id that already
        started one, that exchange (Accepted again, nothing launched).

        Two statements on the plain pool (chat/sql.py): the facts the access
        decision needs, then the writes, all or nothing: each with those of
        the other starts arriving meanwhile. The history is read by the
        generation, after the client heard `accepted`.
        """
        now = utcnow()
        day = utc_day(now)
        scope = sql.chat_scope(cid)
        facts = await self._facts.submit(_Start(cid, caller.user_id, scope, request_id, now, day))
        if facts is None:
            raise conversation_not_found()
        granted, used_today, claimed = sql.granted_used_claimed(facts)
        if claimed is not None:
            return await self._claimed_exchange(caller, cid, request_id)
        agent = sql.agent_of(facts)
        if agent is None:
            raise NotFound("agent not found", reason=Reason.AGENT_NOT_FOUND)
        require_allowed(rule(caller, agent, granted, used_today), now)
        quota = daily_quota(caller, agent)
        user_message_id, assistant_id = uuid.uuid4(), uuid.uuid4()
        exchange = _NewExchange(
            conversation_id=cid,
            user_id=caller.user_id,
            agent_id=agent.id,
            user_message_id=None if turn.content is None else user_message_id,
            content=turn.content,
            assistant_id=assistant_id,
            sibling_of=turn.sibling_of,
            at=now,
            day=day,
            quota=quota,
            scope=scope,
            request_id=request_id,
        )
        try:
            row = await self._writes.submit(exchange)
        except UniqueViolationError as exc:  # a concurrent call with the same request_id won
            if exc.table_name != "idempotency_keys":
                raise
            return await self._claimed_exchange(caller, cid, request_id)
        owned, placed, counted, message_count, title, create_time, update_time, parent_id = row
        if not owned:  # deleted since the facts were read
            raise conversation_not_found()
        if not placed:  # the message it starts from was deleted since (ClearMessages)
            raise message_not_found()
        if not counted:
            raise quota_exceeded(now)
        if turn.content is None:
            assert turn.answered is not None
            user_message = turn.answered
        else:
            user_message = MessageView(
                user_message_id,
                cid,
                MessageRole.USER,
                turn.content,
                MessageState.COMPLETE,
                "",
                0,
                0,
                create_time,
                update_time,
                parent_id,
            )
        first_exchange = message_count == 0 and not title
        # A new question without a parent is its own whole path: nothing to read back.
        root_question = turn.content if turn.content is not None and parent_id is None else None

        async def turns() -> list[ChatTurn]:
            # The path up from the message answered: what other branches
            # (or later exchanges) hold is not this answer's context.
            return await self._conversations.history_for_agent(
                cid,
                user_message.id,
                agent.system_prompt,
                DEFAULT_HISTORY_MESSAGES,
                DEFAULT_HISTORY_CHARS,
                root_question=root_question,
            )

        spec = GenerationSpec(
            message_id=assistant_id,
            conversation_id=cid,
            caller=caller,
            agent_id=agent.id,
            provider=await self._registry.provider_for(agent),
            turns=turns,
            max_output_tokens=agent.max_output_tokens,
            temperature=agent.temperature,
            # Counted with the exchange it pays for when a quota applies;
            # otherwise, with its tokens, when the answer ends.
            count_message=quota is None,
            title_from=turn.content if first_exchange else None,
            title_agent=agent if first_exchange and agent.title_generation else None,
        )
        return _Started(user_message, turn.content is not None, assistant_id, spec)

    async def _read_facts(self, starts: list[_Start]) -> list[tuple[Any, ...] | None]:
        """The facts of each start (sql.EXCHANGE_FACTS, without the position), None where
        the conversation is not its caller's.

        In a burst (a thousand streams opened at once) each start read its
        facts in a statement of its own, each a send, a wake-up and a
        decode; gathered, the burst reads them in a few. Measured with
        scripts/bench_chat.py --words 2 (1,000 streams, PostgreSQL 15, 2 runs
        of 3 rounds each, alternating): `accepted` p99 1.59-2.09 s before,
        1.20-1.70 s after.
        """
        rows = await self._db.fetch(sql.EXCHANGE_FACTS, *map(list, zip(*starts, strict=True)), into=tuple)
        found: list[tuple[Any, ...] | None] = [None] * len(starts)
        for row in rows:
            found[row[0] - 1] = row[1:]
        return found

    async def _write_starts(self, starts: list[_NewExchange]) -> list[tuple[Any, ...]]:
        """The writes of each start (sql.START_EXCHANGES), a record per start.

        One statement per start was one commit (a WAL flush), one round trip
        and one wake-up each; gathered, a burst of a thousand costs a few.
        """
        return await self._db.fetch(
            sql.START_EXCHANGES, *map(list, zip(*starts, strict=True)), self.generations.owner_key, into=tuple
        )

    async def _claimed_exchange(self, caller: Caller, cid: uuid.UUID, request_id: str) -> Accepted:
        """The exchange a request_id already started (its user message and the answer's id)."""
        found = await self._db.fetch(sql.CLAIMED_EXCHANGE, caller.user_id, sql.chat_scope(cid), request_id, into=tuple)
        if not found:
            raise NotFound("the exchange of this request_id was deleted", reason=Reason.MESSAGE_NOT_FOUND)
        *user_message, assistant_id = found[0]
        return Accepted(MessageView.of(tuple(user_message)), assistant_id)

    async def _on_finished(self, outcome: Outcome) -> None:
        """Title the conversation after its first exchange (the usage was stored with the end)."""
        spec = outcome.spec
        if spec.title_from is not None and outcome.state is MessageState.COMPLETE:
            try:
                await self._conversations.title_first_exchange(
                    spec.caller, spec.conversation_id, spec.title_from, spec.title_agent
                )
            except Exception:  # a missing title must not turn a finished answer into an error
                log.exception("could not title conversation %s", spec.conversation_id)

    # -- ResumeStream ------------------------------------------------------

    async def resume_stream(self, caller: Caller, message_id: str, offset: int) -> AsyncIterator[ChatUpdate]:
        v = Violations()
        mid = v.uuid("message_id", message_id)
        if offset < 0:
            v.add("offset", "must not be negative")
        v.raise_if_any()
        assert mid is not None
        async with self._db.transaction() as db:
            message, conversation = await owned_message(db, mid, caller.user_id)
        if message.role is not MessageRole.ASSISTANT:
            raise InvalidArgument(
                [FieldViolation("message_id", "is not an assistant message; only answers are generated")],
                reason=Reason.NOT_A_GENERATION,
            )
        await self._require_offset_within_text(mid, offset)
        async for chat_update in self._follow(conversation.id, mid, offset):
            yield chat_update

    async def _require_offset_within_text(self, message_id: uuid.UUID, offset: int) -> None:
        """OUT_OF_RANGE unless offset is within the text generated so far.

        The buffer of a generation running here, or the row of a finished
        message, is the whole text. The row of a generation running on
        another replica may lag what its client already saw, so an offset
        beyond it is looked at again until the lag has passed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._persist_interval + OFFSET_SETTLE_SLACK_SECONDS
        while True:
            length, whole = await self._text_length(message_id)
            if offset <= length:
                return
            if whole or loop.time() >= deadline:
                raise OutOfRange(
                    f"offset {offset} is beyond the {length} characters generated so far",
                    reason=Reason.OFFSET_OUT_OF_RANGE,
                    metadata={"length": str(length)},
                )
            await asyncio.sleep(0.1)

    async def _text_length(self, message_id: uuid.UUID) -> tuple[int, bool]:
        """Code points of text generated so far, and whether that is known to be all of it."""
        live = self.generations.snapshot(message_id)
        if live is not None:
            return len(live), True
        ended = self.generations.ended(message_id)
        if ended is not None:
            return len(ended.content), True
        async with self._db.transaction() as db:
            row = (
                await db.execute(
                    select(func.char_length(Message.content), Message.state).where(Message.id == message_id)
                )
            ).one_or_none()
        if row is None:
            raise message_not_found()
        return int(row[0]), row[1] in FINAL_STATES

    async def _follow(
        self, conversation_id: uuid.UUID, message_id: uuid.UUID, offset: int
    ) -> AsyncIterator[ChatUpdate]:
        """Replay from offset, then live until the generation ends (see module doc)."""
        # Deltas of a generation running here are delivered in-process; only
        # one running elsewhere (or already ended) needs its replica to send them.
        elsewhere = self.generations.snapshot(message_id) is None and self.generations.ended(message_id) is None
        with self._activity.chat_stream():
            async with self._bus.subscribe(
                conversation_id, remote_deltas=elsewhere, quiet_after=FOLLOW_RECHECK_SECONDS
            ) as subscription:
                loop = asyncio.get_running_loop()
                (position, delta), final = await self._catch_up(message_id, offset)
                sent_at = -math.inf  # when the last delta went out
                frame = self._frame_interval
                if delta:
                    sent_at = loop.time()
                    yield delta
                while final is None:
                    # At most one update per frame, holding everything queued
                    # by then: consecutive deltas travel as one message (see
                    # the module doc). The frame is slept out before looking,
                    # so a steady answer wakes the follower once per frame,
                    # not once per token as well; only a quiet one waits for
                    # its next event, which then goes out at once.
                    due = sent_at + frame
                    if (wait := due - loop.time()) > 0:
                        await asyncio.sleep(wait)
                        frame = stretched_frame(self._frame_interval, loop.time() - due)
                    events = subscription.pending() or [await subscription.next()]
                    text: list[str] = []
                    start = position
                    for event in events:
                        if isinstance(event, TextAppended) and event.message_id == message_id:
                            if event.offset <= position:
                                fresh = event.text[position - event.offset :]
                                text.append(fresh)
                                position += len(fresh)
                                continue
                            event = None  # a gap: fall back to the stored text
                        if event is None or (isinstance(event, Finished) and event.message_id == message_id):
                            if "".join(text):
                                sent_at = loop.time()
                                yield TextDelta(message_id, start, "".join(text))
                            text = []
                            (position, delta), final = await self._catch_up(message_id, position)
                            if delta:
                                sent_at = loop.time()
                                yield delta
                            start = position
                            if final is not None:
                                break
                        elif isinstance(event, ConversationDeleted):
                            raise NotFound("the conversation was deleted", reason=Reason.CONVERSATION_NOT_FOUND)
                    if "".join(text) and final is None:
                        sent_at = loop.time()
                        yield TextDelta(message_id, start, "".join(text))
                yield Ended(final)

    async def _catch_up(
        self, message_id: uuid.UUID, position: int
    ) -> tuple[tuple[int, TextDelta | None], MessageFields | None]:
        """The text after position that the client has not seen, and the final message if it ended.

        A generation running in this process is read from its buffer (fresher
        than the database, and no connection needed: a thousand streams
        starting at once must not queue for the pool), one that ended here
        lately from the final message it stored; otherwise the stored row is
        read. Ownership was checked before following began.
        """
        live = self.generations.snapshot(message_id)
        final: MessageFields | None = None
        if live is not None:
            current = live
        else:
            message = self.generations.ended(message_id)
            if message is None:
                stored = await self._db.fetch(sql.MESSAGE, message_id, into=MessageView.of)
                if not stored:
                    raise message_not_found()
                message = stored[0]
            final = message if message.state in FINAL_STATES else None
            current = message.content
        if position >= len(current):
            return (position, None), final
        return (len(current), TextDelta(message_id, position, current[position:])), final

    # -- CancelGeneration ----------------------------------------------------

    async def cancel_generation(self, caller: Caller, message_id: str) -> Message:
        """Stop the generation (wherever it runs); the partial text stays, CANCELLED.

        Cancelling a message that already ended returns it unchanged, so a
        stop button pressed a moment too late is not an error.
        """
        mid = only_uuid("message_id", message_id)
        async with self._db.transaction() as db:
            message, conversation = await owned_message(db, mid, caller.user_id)
        if message.state is not MessageState.STREAMING:
            return message
        local = self.generations.cancel_local(mid)
        if local is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await local
        else:
            await self._cancel_remote(conversation.id, mid)
        async with self._db.transaction() as db:
            message, _ = await owned_message(db, mid, caller.user_id)
        return message

    async def _cancel_remote(self, conversation_id: uuid.UUID, message_id: uuid.UUID) -> None:
        async with self._bus.subscribe(conversation_id, remote_deltas=False) as subscription:
            self._bus.publish(CancelRequested(conversation_id, message_id))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_CONFIRM_SECONDS):
                    while True:
                        event = await subscription.next()
                        if isinstance(event, Finished) and event.message_id == message_id:
                            return
        # No replica answered: its owner is gone. Cancel in the database,
        # unless the owner finished meanwhile (the state check decides).
        async with self._db.transaction() as db:
            result = await db.execute(
                update(Message)
                .where(Message.id == message_id, Message.state == MessageState.STREAMING)
                .values(state=MessageState.CANCELLED, generation_owner=None, update_time=func.now())
            )
        if rowcount(result):
            self._bus.publish(Finished(conversation_id, message_id, MessageState.CANCELLED))

    # -- WatchConversation ---------------------------------------------------

    async def watch_conversation(self, caller: Caller, conversation_id: str) -> AsyncIterator[WatchUpdate]:
        """The conversation as it is now, then every change to it until it is deleted (see chat/watch.py)."""
        cid = only_uuid("conversation_id", conversation_id)
        epoch = self._watch_epoch
        watch = ConversationWatch(self._db, self.generations, caller, cid)
        with self._activity.chat_stream():
            async with self._bus.subscribe(cid, remote_deltas=True, quiet_after=WATCH_RECHECK_SECONDS) as subscription:
                async for update_ in watch.follow(subscription):
                    if self._watch_epoch != epoch:
                        # close_watches woke the watch (a lost-events catch-up follows, unsent).
                        raise Unavailable("the server is shutting down; watch again", reason=Reason.SHUTTING_DOWN)
                    yield update_
