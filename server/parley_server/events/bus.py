"""Conversation events within a process and across replicas.

Within the process an event reaches subscribers at once, through in-memory
queues. Across replicas it travels through PostgreSQL LISTEN/NOTIFY, so no
extra broker is needed. Deltas are coalesced: a sender task flushes the
outgoing events every `notify_interval` seconds, packing many events (of
many generations) into each NOTIFY payload, which keeps the NOTIFY rate flat
however many streams run. Other events wake the sender at once, though not
sooner than FLUSH_GAP_SECONDS after its previous flush.

Events that only a conversation's followers use (FOLLOWERS_ONLY: deltas,
new messages, changes of the conversation) leave the process only for
conversations some other replica follows. A subscription that wants them
from elsewhere (a watch, or a resume of an answer that runs elsewhere)
announces its conversation on INTEREST_CHANNEL, again every
INTEREST_REFRESH_SECONDS while it lasts and after its LISTEN connection
came back; a replica publishes them on CHANNEL only while an announcement
of the conversation, from another replica, is younger than
INTEREST_TTL_SECONDS. The other events (an answer's end, a deletion, a
cancel request) always travel: a cancel waits for the end from whichever
replica runs the answer. With no remote follower this took NOTIFY payload
from 160-179 bytes per token to 26 (20 streams x 20 words,
scripts/bench_notify.py --quick) and to 5 (200 x 100, 10 KB/s instead of
450), for deltas alone; with new messages and conversation changes too, a
CreateMessage sends nothing, which took its rate at --workers 2 from
1,189-1,333 calls/s to 1,482-1,639 (alternating runs of
scripts/bench_unary.py's CreateMessage round, PostgreSQL 15; PostgreSQL
CPU 321-403 us a call against 260-305).

An event left unsent before the announcement arrived would be missing on
the follower's side. A replica that hears of a follower of a conversation
it did not know to be followed, and left an event of it unsent within the
last INTEREST_TTL_SECONDS, acknowledges the announcement; the follower's
replica then tells each subscriber of that conversation it lost events
(`Subscription.next` returns None: re-read stored state, which holds what
the unsent events told). A replica whose LISTEN connection (re)connects
asks the others to announce at once, rather than leave events of followed
conversations unsent until their next refresh. Payloads on INTEREST_CHANNEL
are JSON: "o" the sender's origin, "c" the conversations it announces, "a"
those it acknowledges, "q" present when it asks for announcements ("c" is
always there: replicas of the previous version read only that).

Each replica owns a `replica_key`, and holds a session advisory lock on it
for as long as its LISTEN connection lives; that is how other replicas tell
whether a generation's owner is still alive (see chat/generations.py).

Channels are database-wide, so each is named after the Parley schema too
(`channel`): installs in two schemas of one database never hear each other.

Events sent and received through NOTIFY count in parley_notify_events_total.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from parley_server.db.locks import new_replica_key
from parley_server.events.schema import (
    ConversationChanged,
    Event,
    MessageCreated,
    TextAppended,
    decode_batch,
    encode_batch,
    is_from,
)
from parley_server.metrics.definitions import NOTIFY_EVENTS

log = logging.getLogger(__name__)

CHANNEL = "parley_events"
# Events only a conversation's followers use (see the module doc).
FOLLOWERS_ONLY = (TextAppended, MessageCreated, ConversationChanged)
# Conversations whose events another replica wants (see the module doc for the payloads).
# A channel of its own, so replicas of the previous version ignore it.
INTEREST_CHANNEL = "parley_interest"
INTEREST_REFRESH_SECONDS = 10.0
INTEREST_TTL_SECONDS = 3 * INTEREST_REFRESH_SECONDS
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
PAYLOAD_LIMIT = 7500
QUEUE_LIMIT = 10_000
# Longest a NOTIFY attempt (connect included) may take before it is given up.
SEND_TIMEOUT_SECONDS = 5.0
# The shortest time between two flushes: a lifecycle event wakes the sender
# at once, but not sooner than this after its previous flush. With 64
# CreateMessage calls in flight the sender flushed ~200 times a second, a
# NOTIFY of 2-3 calls' events each, plus its echo on this replica's LISTEN
# connection; gathered, ~70 (at most 1 / this, whatever the load), and
# server CPU per CreateMessage fell by 30-60 us of ~850 on average (two
# runs of 4 and 6 rounds each way, alternating on one server, Python client
# of scripts/bench_unary.py, --workers 1; 7 of 10 pairs lower on a noisy
# shared machine). An event waits this long at most, and only in a burst.
FLUSH_GAP_SECONDS = 0.01
# A flush's payloads ($1 channels, $2 payloads, in order) in one statement:
# atomic and in order like a transaction of one NOTIFY each, in one round
# trip instead of one per payload plus BEGIN and COMMIT.
_NOTIFY_ALL = "SELECT pg_notify(channel, payload) FROM unnest($1::text[], $2::text[]) AS n (channel, payload)"


def channel(name: str, schema: str) -> str:
    """The NOTIFY channel `name` of the Parley install in `schema`."""
    return f"{name}.{schema}"


class Subscription:
    """Events of one conversation for one consumer.

    If the consumer falls more than QUEUE_LIMIT events behind, or the bus
    lost its LISTEN connection (once it has it back), the queued events are
    dropped and `next` returns None once: the consumer must resynchronise
    from stored state. With `quiet_after`, `next` also returns None once
    nothing arrived for that long (found by a timer ticking twice as often,
    so after up to 1.5 times that): the consumer re-reads stored state in
    case an event never came.

    The timer replaces a timeout on each wait (asyncio.wait_for, a task per
    event; asyncio.timeout costs as much on uvloop): waiting for an event
    took 8.7-8.9 us with either and takes 3.9 us without (a queue fed by
    another task, uvloop; 200 streams x 100 words cost 200-250 us of server
    CPU per token in all). The queue is a deque with at most one waiting
    future, not an asyncio.Queue, whose put and get do bookkeeping for many
    producers and consumers (wake-up queues, unfinished-task counts) that
    one consumer does not need: an event handed to a waiting consumer took
    4.6-6.3 us with asyncio.Queue and takes 4.3-5.4 us (put, the producer's
    yield, the consumer's wake-up and get; min and median of 7 runs of
    100,000, uvloop, on a busy 2-core machine).
    """

    def __init__(self, conversation_id: uuid.UUID, *, quiet_after: float | None = None) -> None:
        self.conversation_id = conversation_id
        self._queue: deque[Event | None] = deque()
        # The consumer's future while it waits in `next` for an empty queue.
        self._waiter: asyncio.Future[None] | None = None
        self._delivered = 0
        self._timer: asyncio.TimerHandle | None = None
        if quiet_after is not None:
            self._tick(quiet_after / 2, -1, 0)

    def _tick(self, interval: float, delivered_before: int, quiet_ticks: int) -> None:
        """Queue None after two ticks without a delivery (unless events wait anyway)."""
        quiet_ticks = quiet_ticks + 1 if self._delivered == delivered_before else 0
        if quiet_ticks >= 2:
            quiet_ticks = 0
            if not self._queue:
                self._put(None)
        self._timer = asyncio.get_running_loop().call_later(
            interval, self._tick, interval, self._delivered, quiet_ticks
        )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def deliver(self, event: Event) -> None:
        self._delivered += 1
        if len(self._queue) >= QUEUE_LIMIT:
            self.mark_lagged()
        else:
            self._put(event)

    def mark_lagged(self) -> None:
        self._queue.clear()
        self._put(None)

    def _put(self, item: Event | None) -> None:
        self._queue.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> Event | None:
        """The next event, or None when events were lost (resync, then call again)."""
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def pending(self) -> list[Event | None]:
        """Every event already queued, without waiting (lets a slow consumer batch)."""
        items = list(self._queue)
        self._queue.clear()
        return items


class EventBus:
    def __init__(self, dsn: str, *, schema: str, notify_interval: float = 0.05) -> None:
        self._dsn = dsn
        self.channel = channel(CHANNEL, schema)
        self.interest_channel = channel(INTEREST_CHANNEL, schema)
        self._interval = notify_interval
        self.origin = uuid.uuid4().hex
        self.replica_key = new_replica_key()
        self._subscribers: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        # Conversations this process's subscribers want deltas from elsewhere
        # for -> how many subscriptions; those to announce on the next flush.
        self._wanted: dict[uuid.UUID, int] = defaultdict(int)
        self._to_announce: set[uuid.UUID] = set()
        self._announced_at = time.monotonic()
        # Conversations other replicas follow -> when that interest expires.
        self._remote_interest: dict[uuid.UUID, float] = {}
        # Conversations whose followers-only events were left unsent -> when
        # the last one was (kept INTEREST_TTL_SECONDS at least); followed
        # ones newly announced, to acknowledge; whether to ask for announcements.
        self._unsent: dict[uuid.UUID, float] = {}
        self._to_acknowledge: set[uuid.UUID] = set()
        self._ask = False
        self._handlers: list[Callable[[Event], None]] = []
        self._outgoing: list[Event] = []
        self._wake = asyncio.Event()
        self._listen_conn: asyncpg.Connection | None = None
        self._send_conn: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # Whether the LISTEN connection, and with it the replica's lock, is up;
        # when it was last re-established after a loss (monotonic clock; None
        # if it was never lost).
        self.lock_held = False
        self.relocked_at: float | None = None

    async def start(self) -> None:
        await self._connect_listener()
        self._tasks.append(asyncio.create_task(self._sender(), name="event-bus-sender"))

    async def stop(self) -> None:
        """Flush what is pending, then close both connections."""
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)
        for conn in (self._listen_conn, self._send_conn):
            if conn is not None and not conn.is_closed():
                await conn.close()

    def add_handler(self, handler: Callable[[Event], None]) -> None:
        """Call handler for every event, local or remote (used for control events)."""
        self._handlers.append(handler)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, conversation_id: uuid.UUID, *, remote_deltas: bool, quiet_after: float | None = None
    ) -> AsyncIterator[Subscription]:
        """Events of the conversation; with remote_deltas, also the deltas of
        generations on other replicas (announced to them, see the module doc).
        For quiet_after, see Subscription."""
        subscription = Subscription(conversation_id, quiet_after=quiet_after)
        self._subscribers[conversation_id].add(subscription)
        if remote_deltas:
            self._wanted[conversation_id] += 1
            self._to_announce.add(conversation_id)
            self._wake.set()
        try:
            yield subscription
        finally:
            subscription.close()
            subscribers = self._subscribers.get(conversation_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[conversation_id]
            if remote_deltas:
                self._wanted[conversation_id] -= 1
                if not self._wanted[conversation_id]:
                    del self._wanted[conversation_id]

    def publish(self, event: Event) -> None:
        """Deliver to local subscribers now and to other replicas on the next flush
        (followers-only events only when another replica follows the conversation)."""
        self._dispatch(event)
        if isinstance(event, FOLLOWERS_ONLY):
            now = time.monotonic()
            if self._remote_interest.get(event.conversation_id, 0.0) <= now:
                self._unsent[event.conversation_id] = now
                return
        self._outgoing.append(event)
        if not isinstance(event, TextAppended):  # deltas wait for the next interval's flush
            self._wake.set()

    def interrupt_subscribers(self) -> None:
        """Wake every subscriber with None (as after lost events), so each
        re-reads what it follows and notices a change of circumstances."""
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.mark_lagged()

    def _dispatch(self, event: Event) -> None:
        for subscription in list(self._subscribers.get(event.conversation_id, ())):
            subscription.deliver(event)
        for handler in self._handlers:
            handler(event)

    # -- PostgreSQL side ---------------------------------------------------

    async def _connect_listener(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        await conn.execute("SELECT pg_advisory_lock($1)", self.replica_key)
        # asyncpg passes NOTIFY payloads as str; its stubs say object.
        await conn.add_listener(self.channel, self._on_notify)  # type: ignore[arg-type]
        await conn.add_listener(self.interest_channel, self._on_interest)  # type: ignore[arg-type]
        conn.add_termination_listener(self._on_listener_lost)
        self._listen_conn = conn
        self.lock_held = True
        self._ask = True  # announcements made while it was not listening were not heard
        self._wake.set()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if is_from(payload, self.origin):
            return  # delivered locally when published
        try:
            _, events = decode_batch(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed event payload on %s", channel)
            return
        NOTIFY_EVENTS.labels("received").inc(len(events))
        for event in events:
            self._dispatch(event)

    def _on_interest(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            if data["o"] == self.origin:
                return
            announced = [uuid.UUID(conversation_id) for conversation_id in data["c"]]
            acknowledged = [uuid.UUID(conversation_id) for conversation_id in data.get("a", ())]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring malformed interest payload on %s", channel)
            return
        now = time.monotonic()
        for conversation_id in announced:
            if self._remote_interest.get(conversation_id, 0.0) <= now and conversation_id in self._unsent:
                self._to_acknowledge.add(conversation_id)
            self._remote_interest[conversation_id] = now + INTEREST_TTL_SECONDS
        for conversation_id in acknowledged:
            if conversation_id in self._wanted:
                for subscription in self._subscribers.get(conversation_id, ()):
                    subscription.mark_lagged()
        if "q" in data:
            self._to_announce.update(self._wanted)
        if self._to_acknowledge or self._to_announce:
            self._wake.set()

    def _on_listener_lost(self, conn: Any) -> None:
        if self._closing:
            return
        log.warning("lost the LISTEN connection; reconnecting")
        self.lock_held = False
        self._tasks.append(asyncio.create_task(self._reconnect_listener()))

    async def _reconnect_listener(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self._connect_listener()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN reconnect failed: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            # What other replicas published while nobody listened is lost.
            # Subscribers resynchronise now that listening has resumed: had
            # they done so when the connection dropped, they would still miss
            # whatever was published during the outage.
            self.relocked_at = time.monotonic()
            self.interrupt_subscribers()
            # Announcements sent meanwhile may be lost the same way.
            self._to_announce.update(self._wanted)
            self._wake.set()
            return

    async def _sender(self) -> None:
        flushed_at = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            wait = flushed_at + FLUSH_GAP_SECONDS - time.monotonic()
            if wait > 0:  # woken soon after a flush: this one takes what comes meanwhile too
                await asyncio.sleep(wait)
            self._wake.clear()
            flushed_at = time.monotonic()
            self._refresh_interest()
            if self._outgoing or self._to_announce or self._to_acknowledge or self._ask:
                events, self._outgoing = self._outgoing, []
                wanted, self._to_announce = sorted(map(str, self._to_announce)), set()
                acknowledged, self._to_acknowledge = sorted(map(str, self._to_acknowledge)), set()
                ask, self._ask = self._ask, False
                if await self._send(
                    [(self.channel, payload) for payload in encode_batch(self.origin, events, PAYLOAD_LIMIT)]
                    + [
                        (self.interest_channel, payload)
                        for payload in self._interest_payloads(wanted, acknowledged, ask=ask)
                    ]
                ):
                    NOTIFY_EVENTS.labels("sent").inc(len(events))
            if self._closing and not self._outgoing:
                return

    def _refresh_interest(self) -> None:
        """Re-announce what is still wanted; forget others' interest that expired, and old unsent events."""
        now = time.monotonic()
        if now - self._announced_at < INTEREST_REFRESH_SECONDS:
            return
        self._announced_at = now
        self._to_announce.update(self._wanted)
        for conversation_id in [c for c, expires in self._remote_interest.items() if expires <= now]:
            del self._remote_interest[conversation_id]
        for conversation_id in [c for c, at in self._unsent.items() if at <= now - INTEREST_TTL_SECONDS]:
            del self._unsent[conversation_id]

    def _interest_payloads(self, announced: list[str], acknowledged: list[str], *, ask: bool) -> list[str]:
        """Payloads announcing and acknowledging the conversations, and asking
        for announcements, each under PAYLOAD_LIMIT (see the module doc)."""
        per_payload = (PAYLOAD_LIMIT - 100) // 39  # a quoted UUID and a comma
        payloads: list[dict[str, Any]] = [
            {"o": self.origin, "c": announced[start : start + per_payload]}
            for start in range(0, len(announced), per_payload)
        ]
        payloads += [
            {"o": self.origin, "c": [], "a": acknowledged[start : start + per_payload]}
            for start in range(0, len(acknowledged), per_payload)
        ]
        if ask:
            payloads.append({"o": self.origin, "c": [], "q": 1})
        return [json.dumps(payload, separators=(",", ":")) for payload in payloads]

    async def _send(self, payloads: list[tuple[str, str]]) -> bool:
        """NOTIFY the payloads; after two failed attempts they are dropped (False).

        Any failure counts, and each attempt is bounded in time: if the
        sender task died or hung (a connection broken mid-restart raises
        asyncpg's InternalClientError, which is none of its connection
        errors), every later event would pile up in `_outgoing` for good,
        growing the process and never reaching other replicas.
        """
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    if self._send_conn is None or self._send_conn.is_closed():
                        self._send_conn = await asyncpg.connect(self._dsn)
                    channels = [channel for channel, _ in payloads]
                    await self._send_conn.execute(_NOTIFY_ALL, channels, [payload for _, payload in payloads])
                return True
            except Exception as exc:
                log.warning("NOTIFY failed (attempt %d): %r", attempt, exc)
                if self._send_conn is not None:
                    self._send_conn.terminate()
                self._send_conn = None
        log.error("dropped %d event payloads for other replicas", len(payloads))
        return False
