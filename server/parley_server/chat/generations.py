"""Generations: model replies that live apart from the stream that asked for them.

A generation is an asyncio task owned by this process. It appends the
provider's text to an in-memory buffer and publishes each delta on the event
bus; clients merely follow. A disconnecting client therefore loses nothing,
and CancelGeneration (from any connection or replica) is the only stop button.

Persistence is batched: a single flusher writes every dirty generation's text
in one statement every `persist_interval` seconds (sooner when a buffer
grows past `persist_chars`), so the database sees a handful of statements per
second however many streams run, and a crash loses at most the last interval.

The end of a generation (final text and state) is written until it is
stored: while PostgreSQL is away the write is retried with backoff, the
generation stays in memory (followers keep reading its text), and the end is
announced only once it is stored, so a follower never reads a row that says
STREAMING after the announcement. At most END_WRITES_IN_FLIGHT ends are
stored at once, so a burst of them leaves the pool to other statements.

Ownership: each STREAMING message records the advisory-lock key of the
replica generating it. A sweeper (at start and periodically) marks FAILED,
with the text stored so far, every STREAMING message whose owner no longer
holds its lock, i.e. whose process died (also when it died while retrying the
final write). A database restart frees every replica's lock at once, so
while its own lock is lost, and for a while after it was re-taken, a replica
leaves the others' messages alone: they are re-taking theirs. It repairs
this replica's own STREAMING messages too when no generation of this process
runs them (a SendMessage whose commit was reported failed although it
happened): those are failed only when two consecutive sweeps saw them so,
because a message is committed a moment before its generation is launched.
Nothing stays "streaming" forever.

Each generation's metrics (running, time to first token, speed, outcome) are
kept by a metrics.generation.GenerationWatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update

from parley_server.agents.access_rules import utc_day
from parley_server.agents.providers.base import ChatProvider, ChatTurn, GeneratedText, ProviderError, Usage
from parley_server.chat import sql
from parley_server.common.activity import Activity
from parley_server.common.caller import Caller
from parley_server.common.clock import utcnow
from parley_server.common.periodic import every
from parley_server.conversations.views import MessageView
from parley_server.db.database import Database
from parley_server.db.models import Agent, Message, MessageState
from parley_server.db.outage import is_outage
from parley_server.events.bus import EventBus
from parley_server.events.schema import CancelRequested, Event, Finished, TextAppended
from parley_server.metrics.generation import GenerationWatch

log = logging.getLogger(__name__)

OWNER_DIED = "the server generating this answer stopped before it finished"
SHUTTING_DOWN = "the server was shut down before the answer finished"
TIMED_OUT = "the answer took too long and was stopped"
INTERNAL = "the answer failed because of an internal error"
LOST = "the answer was interrupted and could not be finished"
# After this replica lost and re-took its lock (a database restart releases
# every replica's lock at once), other replicas get this long to re-take
# theirs before their generations are judged orphaned. Their reconnect
# backoff is at most 5 s.
OWNER_RELOCK_GRACE_SECONDS = 15.0
# Ends stored at once, at most, by this process. Each is a statement on the
# plain pool, whose callers queue in arrival order: a burst of ends took
# every connection and new exchanges' starts queued behind them (1,000
# answers of 2 words, scripts/bench_chat.py --words 2: a start's batch
# waited up to 0.4 s for a connection), as did everything else whenever
# the usage row the ends add to was locked. The rest of the pool stays free.
END_WRITES_IN_FLIGHT = 2
# Backoff of the final write while the database is away.
FINAL_WRITE_BACKOFF_INITIAL = 0.1
FINAL_WRITE_BACKOFF_MAX = 2.0
# How long the stored final message of a generation of this process stays in
# memory after its end was announced: long enough for its followers to hear
# the announcement and read it from here rather than from the database.
FINAL_KEEP_SECONDS = 10.0
# Backoff of the history read while the database is away.
HISTORY_BACKOFF_MAX = 2.0


@dataclass
class GenerationSpec:
    """Everything a generation needs, resolved before it starts."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    caller: Caller
    agent_id: uuid.UUID
    provider: ChatProvider
    # Reads what the model is sent. The generation calls it (again while the
    # database is away), so the read is not on the way to `accepted`.
    turns: Callable[[], Awaitable[Sequence[ChatTurn]]]
    max_output_tokens: int
    temperature: float
    # Whether the message itself is still to be counted in the usage, which
    # is stored with the end (no quota took it when it was sent); and for
    # on_finished, when this exchange is its conversation's first, the
    # user's message to title it from and the agent that may be asked for the title.
    count_message: bool = False
    title_from: str | None = None
    title_agent: Agent | None = None


@dataclass
class Generation:
    spec: GenerationSpec
    chunks: list[str] = field(default_factory=list)
    length: int = 0
    persisted_length: int = 0
    usage: Usage | None = None
    cancel_requested: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        if len(self.chunks) > 1:
            self.chunks = ["".join(self.chunks)]
        return self.chunks[0] if self.chunks else ""


@dataclass(frozen=True)
class Outcome:
    """How a generation ended, handed to the `on_finished` callback."""

    spec: GenerationSpec
    state: MessageState
    text: str
    usage: Usage
    failure_reason: str


class GenerationManager:
    def __init__(
        self,
        database: Database,
        bus: EventBus,
        *,
        on_finished: Callable[[Outcome], Awaitable[None]],
        activity: Activity,
        timeout_seconds: float,
        persist_interval: float = 0.5,
        persist_chars: int = 4096,
        sweep_interval: float = 10.0,
    ) -> None:
        self._db = database
        self._bus = bus
        self._on_finished = on_finished
        self._activity = activity
        self._timeout = timeout_seconds
        self._persist_interval = persist_interval
        self._persist_chars = persist_chars
        self._sweep_interval = sweep_interval
        self._running: dict[uuid.UUID, Generation] = {}
        # Final messages of generations that ended here lately (see FINAL_KEEP_SECONDS).
        self._ended: dict[uuid.UUID, MessageView] = {}
        self._flush_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Generation tasks until they end, after-work (usage, title) included.
        self._generation_tasks: set[asyncio.Task[None]] = set()
        # Ends being stored (shielded from the generation's cancellation).
        self._finishing: set[asyncio.Future[None]] = set()
        self._end_writes = asyncio.Semaphore(END_WRITES_IN_FLIGHT)
        # This replica's STREAMING messages that no generation ran at the last sweep.
        self._suspects: set[uuid.UUID] = set()
        bus.add_handler(self._on_event)

    @property
    def owner_key(self) -> int:
        return self._bus.replica_key

    async def start(self) -> None:
        await self.sweep()
        self._tasks = [
            asyncio.create_task(self._flusher(), name="generation-flusher"),
            asyncio.create_task(
                every(self._sweep_interval, self.sweep, "sweeping orphaned generations"), name="generation-sweeper"
            ),
        ]

    async def idle(self, timeout: float | None = None) -> bool:
        """Wait until no generation task (including its after-work) runs; False on timeout."""
        pending = set(self._generation_tasks)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            return not still
        return True

    async def stop(self, grace: float) -> None:
        """Let generations finish for `grace` seconds, then fail the rest (text kept)."""
        if not await self.idle(grace):
            for task in list(self._generation_tasks):
                task.cancel()
            await self.idle()
            # Ends still not stored (the database is away): the next sweep of
            # any replica, or this one's restart, fails them with their text.
            for finishing in list(self._finishing):
                finishing.cancel()
            await asyncio.gather(*self._finishing, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def launch(self, spec: GenerationSpec) -> None:
        """Start generating; the task outlives the RPC that called this."""
        generation = Generation(spec)
        self._running[spec.message_id] = generation
        generation.task = asyncio.create_task(self._run(generation), name=f"generation-{spec.message_id}")
        self._generation_tasks.add(generation.task)
        generation.task.add_done_callback(self._generation_tasks.discard)

    def snapshot(self, message_id: uuid.UUID) -> str | None:
        """The text generated so far, when this process runs that generation."""
        generation = self._running.get(message_id)
        return generation.text if generation else None

    def ended(self, message_id: uuid.UUID) -> MessageView | None:
        """The stored final message, when a generation of this process ended it lately.

        A thousand streams ending together would otherwise each read their
        row back right after it was written (a transaction and an ORM load
        apiece) to send the final message.
        """
        return self._ended.get(message_id)

    def cancel_local(self, message_id: uuid.UUID) -> asyncio.Task[None] | None:
        """Stop a generation of this process; returns its task to await, if it runs here."""
        generation = self._running.get(message_id)
        if generation is None or generation.task is None:
            return None
        generation.cancel_requested = True
        generation.task.cancel()
        return generation.task

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CancelRequested):
            self.cancel_local(event.message_id)

    async def _run(self, generation: Generation) -> None:
        with self._activity.generation(), GenerationWatch(generation.spec.provider.name) as watch:
            await self._generate(generation, watch)

    async def _generate(self, generation: Generation, watch: GenerationWatch) -> None:
        spec = generation.spec
        state, reason = MessageState.COMPLETE, ""
        try:
            async with asyncio.timeout(self._timeout):
                turns = await self._turns(spec)
                async for event in spec.provider.stream(
                    turns, max_output_tokens=spec.max_output_tokens, temperature=spec.temperature
                ):
                    if isinstance(event, GeneratedText) and event.text:
                        watch.text()
                        self._append(generation, event.text)
                    elif isinstance(event, Usage):
                        generation.usage = event
        except asyncio.CancelledError:
            state = MessageState.CANCELLED if generation.cancel_requested else MessageState.FAILED
            reason = "" if generation.cancel_requested else SHUTTING_DOWN
        except TimeoutError:
            state, reason = MessageState.FAILED, TIMED_OUT
        except ProviderError as exc:
            state, reason = MessageState.FAILED, exc.reason
        except Exception:
            log.exception("generation %s failed", spec.message_id)
            state, reason = MessageState.FAILED, INTERNAL
        finally:
            watch.ended(state.value, generation.usage.completion_tokens if generation.usage else 0)
            finishing = asyncio.ensure_future(self._finish(generation, state, reason))
            self._finishing.add(finishing)
            finishing.add_done_callback(self._finishing.discard)
            await asyncio.shield(finishing)

    @staticmethod
    async def _turns(spec: GenerationSpec) -> Sequence[ChatTurn]:
        """The history for the model, read again while the database is away:
        the exchange was accepted, and an outage is a pause, not its failure."""
        delay = FINAL_WRITE_BACKOFF_INITIAL
        while True:
            try:
                return await spec.turns()
            except Exception as exc:
                if not is_outage(exc):
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, HISTORY_BACKOFF_MAX)

    def _append(self, generation: Generation, piece: str) -> None:
        spec = generation.spec
        offset = generation.length
        generation.chunks.append(piece)
        generation.length += len(piece)
        self._bus.publish(TextAppended(spec.conversation_id, spec.message_id, offset, piece))
        if generation.length - generation.persisted_length >= self._persist_chars:
            self._flush_now.set()

    async def _finish(self, generation: Generation, state: MessageState, reason: str) -> None:
        """Store the final text and state, announce the end, then run on_finished
        (usage, title), which may take a while and must not delay the announcement."""
        spec = generation.spec
        usage = generation.usage or Usage(prompt_tokens=0, completion_tokens=0)
        final_text = generation.text
        try:
            final = await self._store_end(spec, final_text, state, reason, usage)
        except asyncio.CancelledError:
            log.warning("stopping before the end of generation %s was stored; it will be failed", spec.message_id)
            raise
        finally:
            self._running.pop(spec.message_id, None)
        if final is not None:
            self._ended[spec.message_id] = final
            asyncio.get_running_loop().call_later(FINAL_KEEP_SECONDS, self._ended.pop, spec.message_id, None)
        self._bus.publish(Finished(spec.conversation_id, spec.message_id, state))
        if final is not None:
            try:
                await self._on_finished(Outcome(spec, state, final_text, usage, reason))
            except Exception:
                log.exception("after-generation work failed for %s", spec.message_id)

    async def _store_end(
        self, spec: GenerationSpec, final_text: str, state: MessageState, reason: str, usage: Usage
    ) -> MessageView | None:
        """Write the end, with its usage, until it is stored; the final message, or None
        when the message had already ended (cancelled or failed by another replica meanwhile)."""
        # One statement (chat/sql.py), committed on its own: no session, no
        # BEGIN/COMMIT round trips, and the usage row locked only inside it.
        args = (
            spec.message_id,
            final_text,
            state.value,
            reason,
            usage.prompt_tokens,
            usage.completion_tokens,
            spec.caller.user_id,
            spec.agent_id,
            utc_day(utcnow()),
            1 if spec.count_message else 0,
        )
        delay = FINAL_WRITE_BACKOFF_INITIAL
        attempt = 1
        while True:
            try:
                async with self._end_writes:
                    rows = await self._db.fetch(sql.END_EXCHANGE, *args, into=MessageView.of)
                    if not rows and attempt > 1:
                        # An earlier attempt may have committed before its connection dropped.
                        rows = await self._db.fetch(sql.MESSAGE, spec.message_id, into=MessageView.of)
                        rows = [row for row in rows if (row.state, row.content) == (state, final_text)]
            except Exception as exc:
                if attempt == 1:
                    log.warning(
                        "could not store the end of generation %s (%r); retrying until it is stored",
                        spec.message_id,
                        exc,
                        exc_info=not is_outage(exc),
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, FINAL_WRITE_BACKOFF_MAX)
                attempt += 1
                continue
            if attempt > 1:
                log.info("stored the end of generation %s after %d attempts", spec.message_id, attempt)
            return rows[0] if rows else None

    async def _flusher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), timeout=self._persist_interval)
            self._flush_now.clear()
            try:
                await self.flush()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("could not persist streaming text; will retry")

    async def flush(self) -> None:
        """Write the text of every generation that grew since its last write."""
        dirty = [g for g in self._running.values() if g.length > g.persisted_length]
        if not dirty:
            return
        texts = [(g.spec.message_id, g.text, g.length) for g in dirty]
        await self._db.fetch(
            sql.PERSIST_TEXTS, [mid for mid, _, _ in texts], [body for _, body, _ in texts], into=tuple
        )
        for generation, (_, _, length) in zip(dirty, texts, strict=True):
            generation.persisted_length = max(generation.persisted_length, length)

    async def sweep(self) -> int:
        """Mark FAILED the generations no process runs any more; returns how many."""
        return await self._sweep_dead_owners() + await self._sweep_own_orphans()

    async def _sweep_dead_owners(self) -> int:
        """Messages of replicas whose advisory lock is free: their process is gone
        (unless the database just restarted, and the owners are still reconnecting)."""
        relocked = self._bus.relocked_at
        if not self._bus.lock_held or (
            relocked is not None and time.monotonic() - relocked < OWNER_RELOCK_GRACE_SECONDS
        ):
            return 0
        async with self._db.transaction() as db:
            rows = (
                await db.execute(
                    text(
                        """
                        WITH owners AS (
                            SELECT DISTINCT generation_owner AS key FROM messages
                            WHERE state = 'streaming' AND generation_owner IS DISTINCT FROM :me
                        ), dead AS (
                            SELECT key FROM owners WHERE key IS NULL OR pg_try_advisory_xact_lock(key)
                        )
                        UPDATE messages SET state = 'failed', failure_reason = :reason,
                               generation_owner = NULL, update_time = now()
                        WHERE state = 'streaming'
                          AND (generation_owner IN (SELECT key FROM dead)
                               OR (generation_owner IS NULL AND EXISTS (SELECT 1 FROM dead WHERE key IS NULL)))
                        RETURNING id, conversation_id
                        """
                    ),
                    {"me": self.owner_key, "reason": OWNER_DIED},
                )
            ).all()
        return self._announce_failed(rows, "was orphaned by a stopped server")

    async def _sweep_own_orphans(self) -> int:
        """This replica's STREAMING messages that no generation of it ran at two sweeps in a row."""
        async with self._db.transaction() as db:
            streaming = set(
                (
                    await db.scalars(
                        select(Message.id).where(
                            Message.state == MessageState.STREAMING, Message.generation_owner == self.owner_key
                        )
                    )
                ).all()
            )
        # Read after the query: a generation launched meanwhile is running now.
        idle = streaming - self._running.keys()
        orphans, self._suspects = idle & self._suspects, idle - self._suspects
        if not orphans:
            return 0
        async with self._db.transaction() as db:
            rows = (
                await db.execute(
                    update(Message)
                    .where(
                        Message.id.in_(orphans),
                        Message.state == MessageState.STREAMING,
                        Message.generation_owner == self.owner_key,
                    )
                    .values(
                        state=MessageState.FAILED, failure_reason=LOST, generation_owner=None, update_time=func.now()
                    )
                    .returning(Message.id, Message.conversation_id)
                )
            ).all()
        return self._announce_failed(rows, "was not running on this server")

    def _announce_failed(self, rows: Sequence[Any], why: str) -> int:
        """Log and announce the (message id, conversation id) rows a sweep failed; how many."""
        for message_id, conversation_id in rows:
            log.warning("generation %s %s; marked failed", message_id, why)
            self._bus.publish(Finished(conversation_id, message_id, MessageState.FAILED))
        return len(rows)
