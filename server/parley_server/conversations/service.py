"""ConversationService rules: the caller's conversations and their messages.

Properties this module keeps:
- Everything is scoped to the caller: another user's conversation is
  NOT_FOUND (conversations/ownership.py), and list queries filter on the caller first.
- A conversation's message_count / last_message_time change only while its row
  is locked, so concurrent writers cannot lose an increment.
- Reading the history for a model (`history_for_agent`) and the automatic
  title (`title_first_exchange`) are public because ChatService builds on them.
- Every change a conversation's watchers must see (WatchConversation) is
  published as an event after its transaction commits, so a receiver that
  reads the database sees the change.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

from asyncpg import Record
from sqlalchemy import Delete, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.agents.access_service import AgentAccessService
from parley_server.agents.providers.base import ChatTurn, ProviderError, TurnRole, complete_text
from parley_server.agents.registry import AgentRegistry
from parley_server.common import idempotency
from parley_server.common.caller import Caller
from parley_server.common.clock import from_epoch_us, utcnow
from parley_server.common.errors import FailedPrecondition, NotFound, PermissionDenied, Reason, ResourceExhausted
from parley_server.common.pagination import DEFAULT_PAGE_SIZE, Page, Paginator, time_id_after, time_id_keyset
from parley_server.common.validation import Violations, only_uuid
from parley_server.conversations import sql
from parley_server.conversations.ownership import (
    conversation_not_found,
    message_not_found,
    owned_conversation,
    owned_conversation_view,
)
from parley_server.conversations.titles import clean_title, heuristic_title
from parley_server.conversations.views import ConversationView, ListedMessage, MessageView
from parley_server.db.batching import Batcher
from parley_server.db.database import Database, rowcount
from parley_server.db.locks import fresh_conversation_key
from parley_server.db.models import Agent, Conversation, Message, MessageRole
from parley_server.db.versioned_rows import VersionedRows
from parley_server.events.schema import ConversationChanged, ConversationDeleted, Event, MessageCreated

log = logging.getLogger(__name__)

MAX_TITLE_LENGTH = 200
MAX_QUERY_LENGTH = 200
MAX_CONTENT_LENGTH = 100_000
# Pages ListConversations keeps per process (db/versioned_rows.py): the
# sidebars of the users who list most. Only pages of at most
# KEPT_PAGE_ROWS rows are kept (the default page size and one to tell
# whether there is a next), so at most about 13,000 small rows in all.
LISTED_PAGES_KEPT = 256
KEPT_PAGE_ROWS = DEFAULT_PAGE_SIZE + 1
# ListConversations requests worked out, per process (`_listing_request`).
LISTING_REQUESTS_KEPT = 1024
# Conversations GetConversation keeps per process, a small tuple each.
VIEWS_KEPT = 4096
UPDATABLE_PATHS = {"title", "archived", "pinned", "metadata"}
DEFAULT_EMPTY_AGE = timedelta(hours=24)
# The history a model gets with each SendMessage, which GetMessagesForAgent
# shows when asked with 0 budgets. Larger budgets are refused beyond these
# maxima, so one response stays well under the gRPC message size limit.
DEFAULT_HISTORY_MESSAGES = 50
MAX_HISTORY_MESSAGES = 500
DEFAULT_HISTORY_CHARS = 100_000
MAX_HISTORY_CHARS = 500_000
# A ListMessages page stops early once its contents pass this many UTF-8
# bytes: 200 messages of 100,000 characters would not fit in one response.
MAX_PAGE_CONTENT_BYTES = 2 * 1024 * 1024
# Asking the agent for a title: a short answer, quickly, or the heuristic.
TITLE_INSTRUCTION = (
    "Write a short title (at most 8 words) for a conversation that starts with the user's "
    "message below. Answer with the title only, without quotes or punctuation at the end."
)
TITLE_SOURCE_CHARS = 2000
TITLE_MAX_OUTPUT_TOKENS = 32
TITLE_TEMPERATURE = 0.2
TITLE_TIMEOUT_SECONDS = 20.0
# CreateMessage's group commit (db/batching.py): at most this many batches
# in flight per process, of at most MESSAGE_BATCH_LIMIT messages each, a
# batch starting beside a running one only once that one has run
# MESSAGE_BATCH_STALL_SECONDS (a lock wait, not a statement's pace: 1-3 ms
# under load). With batches started as soon as a slot was free, 64 callers
# made 3.2-4.7 messages a batch, and PostgreSQL planned 60-100% of the
# statements anew (its plan cache judged a plan for a batch of one worth
# making each time, about 1 ms); one at a time made 7.9-8.9, planned once
# per connection. scripts/bench_unary.py, one round of 4 s, PostgreSQL 15,
# pg_stat_statements: CreateMessage with a new request_id at 2 workers
# 1,307-1,979 calls/s (PostgreSQL CPU 377-604 us a call) against
# 2,197-2,379 (279-315 us) one at a time, in alternating runs.
MESSAGE_BATCHES_IN_FLIGHT = 4
MESSAGE_BATCH_STALL_SECONDS = 0.05
MESSAGE_BATCH_LIMIT = 64

_TURN_ROLES: dict[str, TurnRole] = {
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.SYSTEM.value: "system",
}


class ConversationFilter(NamedTuple):
    """ListConversations filters as requested: empty / None means "any"."""

    agent_id: str = ""
    archived: bool | None = None
    pinned: bool | None = None
    query: str = ""
    # One metadata pair; the value is None when not given (and "" is a value).
    metadata_key: str = ""
    metadata_value: str | None = None


@dataclass(frozen=True)
class ConversationChanges:
    """New values for UpdateConversation; only the fields named in the mask are used."""

    title: str = ""
    archived: bool = False
    pinned: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)


def message_content(v: Violations, field: str, value: str) -> str:
    """Check a message text (shared with ChatService): 1 to 100,000 characters, no NUL.

    Unlike `Violations.text` the content is kept verbatim (indentation and
    line endings of pasted code matter) and control characters other than
    NUL, which PostgreSQL text cannot store, are allowed.
    """
    if not value.strip():
        v.add(field, "is required")
    elif len(value) > MAX_CONTENT_LENGTH:
        v.add(field, f"must be at most {MAX_CONTENT_LENGTH} characters")
    elif "\x00" in value:
        v.add(field, "must not contain NUL characters")
    return value


def _budget(v: Violations, field: str, value: int, default: int, maximum: int) -> int:
    """A history budget: 0 means default; negative or larger than maximum is an error."""
    if value < 0:
        v.add(field, "must not be negative")
    elif value > maximum:
        v.add(field, f"must be at most {maximum:,}")
    return value or default


def _metadata_filter(v: Violations, where: ConversationFilter) -> str | None:
    """ListConversations' pair as the jsonb its containment test (`@>`) takes; None when not asked.

    Key and value come together: the index answers "has this pair", and a
    key alone is more likely a forgotten value than a wish for any value.
    """
    if not where.metadata_key and where.metadata_value is None:
        return None
    if not where.metadata_key:
        v.add("metadata_key", "is required with metadata_value")
    if where.metadata_value is None:
        v.add("metadata_value", "is required with metadata_key")
    key = v.metadata_key("metadata_key", where.metadata_key)
    value = v.metadata_value("metadata_value", where.metadata_value or "")
    return json.dumps({key: value})


class _NewMessage(NamedTuple):
    """One CreateMessage's row of sql.CREATE_MESSAGES, in its parameters' order."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    message_id: uuid.UUID
    role: str
    content: str
    at: datetime
    request_id: str | None


def _turn(record: Record) -> ChatTurn:
    """A turn from a record of sql.HISTORY."""
    return ChatTurn(_TURN_ROLES[record[0]], record[1])


def _fitting(messages: Sequence[ListedMessage], size: int) -> int:
    """How many of the first `size` messages fit in one response's byte budget (at least one)."""
    total = 0
    for count, listed in enumerate(messages[:size]):
        total += len(listed.message.content.encode())
        if total > MAX_PAGE_CONTENT_BYTES and count > 0:
            return count
    return size


class _ListingRequest(NamedTuple):
    """A ListConversations request, worked out (`_listing_request`)."""

    size: int
    # What the request's page tokens are bound to: the caller and the filters.
    scope: str
    query: str
    # The page's statements, given the search's tsquery (None: no search).
    statements: functools.partial[sql.ConversationsPage]
    # The page's statements when there is no search; None for a search.
    listing: sql.ConversationsPage | None


@functools.lru_cache(maxsize=LISTING_REQUESTS_KEPT)
def _listing_request(
    paginator: Paginator, user_id: uuid.UUID, page_size: int, page_token: str, where: ConversationFilter
) -> _ListingRequest:
    """The request checked (InvalidArgument otherwise), its scope, its page
    token read and its page's statements made: the same for the same
    arguments, so worked out once per distinct request a process sees often
    (a sidebar lists the same first page after every exchange). Timed inside
    a served process under load, this took 16 us of a ListConversations
    call. A request that fails its checks raises every time (lru_cache
    keeps no exceptions)."""
    v = Violations()
    size = Paginator.page_size(v, page_size)
    agent_uuid = v.uuid("agent_id", where.agent_id) if where.agent_id else None
    query = v.text("query", where.query, max_length=MAX_QUERY_LENGTH)
    metadata = _metadata_filter(v, where)
    v.raise_if_any()
    scope = json.dumps(
        ["ListConversations", str(user_id), str(agent_uuid or ""), where.archived, where.pinned, query, metadata]
    )
    keyset = paginator.decode(v, page_token, scope, 2)
    v.raise_if_any()
    statements = functools.partial(
        sql.conversations_page,
        user_id,
        agent_id=agent_uuid,
        archived=where.archived,
        pinned=where.pinned,
        metadata=metadata,
        after=None if keyset is None else time_id_after(keyset),
        limit=size + 1,
    )
    return _ListingRequest(size, scope, query, statements, None if query else statements(tsquery=None))


class ConversationService:
    def __init__(
        self,
        database: Database,
        paginator: Paginator,
        access: AgentAccessService,
        registry: AgentRegistry,
        *,
        publish: Callable[[Event], None] | None = None,
    ) -> None:
        """publish (the event bus's) receives conversation events; None where nobody watches."""
        self._db = database
        self._paginator = paginator
        self._access = access
        self._registry = registry
        self._publish = publish
        self._listed: VersionedRows[Page[ConversationView]] = VersionedRows(LISTED_PAGES_KEPT)
        self._viewed: VersionedRows[ConversationView] = VersionedRows(VIEWS_KEPT)
        self._message_writes: Batcher[_NewMessage, tuple[Any, ...]] = Batcher(
            self._write_messages,
            keys=lambda message: (message.conversation_id,),
            max_batch=MESSAGE_BATCH_LIMIT,
            max_in_flight=MESSAGE_BATCHES_IN_FLIGHT,
            stall_after=MESSAGE_BATCH_STALL_SECONDS,
        )

    # -- conversations ------------------------------------------------------

    async def create_conversation(
        self, caller: Caller, agent_id: str, title: str, request_id: str, metadata: Mapping[str, str]
    ) -> Conversation:
        """A new conversation with an agent the caller may use; a retried request_id returns the first."""
        v = Violations()
        agent_uuid = v.uuid("agent_id", agent_id)
        title = v.text("title", title, max_length=MAX_TITLE_LENGTH)
        v.request_id("request_id", request_id)
        pairs = v.metadata("metadata", metadata)
        v.raise_if_any()
        assert agent_uuid is not None
        async with self._db.transaction() as db:
            conversation_id, create = await idempotency.claim(db, caller.user_id, "conversation", request_id)
            if not create:
                return await owned_conversation(db, conversation_id, caller.user_id)
            await self._access.require_access(db, caller, agent_uuid)
            return await self._add_conversation(db, caller, agent_uuid, conversation_id, title=title, metadata=pairs)

    async def get_conversation(self, caller: Caller, conversation_id: str) -> ConversationView:
        """The caller's conversation: the one kept from an earlier call when
        PostgreSQL still holds it as it was (its xmin, db/versioned_rows.py),
        else read whole (and kept).

        Asking for the xmin alone spares decoding twelve columns, and a kept
        view is the same object, whose response the handler keeps
        (conversations/convert.py). A changed conversation costs that
        question plus the read.
        """
        cid = only_uuid("conversation_id", conversation_id)
        versions = await self._db.fetch(sql.OWNED_CONVERSATION_VERSION, cid, caller.user_id, into=itemgetter(0))
        if not versions:
            raise conversation_not_found()
        kept = self._viewed.get((cid, versions[0]))
        if kept is not None:
            return kept
        view = await owned_conversation_view(self._db, cid, caller.user_id)
        self._viewed.keep((view.id, view.version), view)
        return view

    async def list_conversations(
        self, caller: Caller, page_size: int, page_token: str, where: ConversationFilter
    ) -> Page[ConversationView]:
        """The caller's conversations, newest activity first, keyset-paginated on (update_time, id)."""
        request = _listing_request(self._paginator, caller.user_id, page_size, page_token, where)
        if request.listing is not None:
            return await self._listed_page(request.listing, request.size, request.scope)
        # Read-only: the word lookup and the page need not share a snapshot.
        tsquery = await self._prefix_tsquery(request.query)
        if tsquery is None:  # only punctuation: no word can match
            return Page([], "")
        # Its matching, over every message, is the costly part: read whole at once.
        listing = request.statements(tsquery=tsquery)
        rows = await self._db.fetch(listing.rows, *listing.args, into=ConversationView.of)
        return self._page(rows, request.size, request.scope)

    async def _listed_page(self, listing: sql.ConversationsPage, size: int, scope: str) -> Page[ConversationView]:
        """The page kept from an earlier listing when PostgreSQL still holds
        its rows as they were, else the page read whole (and kept).

        A listing is mostly rows listed before (the web page's sidebar lists
        them again after every exchange). Asking for the rows' ids and xmins
        as one text costs PostgreSQL and this process a fraction of reading
        them whole, and a kept page costs nothing more: no rows to decode,
        no page token to sign, and the same page object, whose response the
        handler keeps (conversations/convert.py). Measured with
        scripts/bench_unary.py (first page of 20, PostgreSQL 15): 323-343 us
        of server CPU per call against 429-447 with the rows kept one by one.
        When a row has changed, the page costs that question plus the read.
        The key holds the listing's scope and size, so the page and its
        token are exactly what reading the same rows would make.
        """
        (version,) = await self._db.fetch(listing.version, *listing.args, into=itemgetter(0))
        kept = self._listed.get((scope, size, version))
        if kept is not None:
            return kept
        rows = await self._db.fetch(listing.rows, *listing.args, into=ConversationView.of)
        page = self._page(rows, size, scope)
        if len(rows) <= KEPT_PAGE_ROWS:
            self._listed.keep((scope, size, sql.rows_version(rows)), page)
        return page

    def _page(self, rows: list[ConversationView], size: int, scope: str) -> Page[ConversationView]:
        return self._paginator.page(rows, size, scope, lambda c: time_id_keyset(from_epoch_us(c.update_time_us), c.id))

    async def get_or_create_fresh_conversation(self, caller: Caller, agent_id: str) -> tuple[Conversation, bool]:
        """The caller's empty, unarchived conversation with the agent, created if there is none.

        Concurrent calls for the same (user, agent) are serialised by a
        transaction-scoped advisory lock: the second waits until the first
        commits and then finds its conversation, so only one is ever created.
        Returns the conversation and whether this call created it.
        """
        v = Violations()
        agent_uuid = v.uuid("agent_id", agent_id)
        v.raise_if_any()
        assert agent_uuid is not None
        async with self._db.transaction() as db:
            await self._access.require_access(db, caller, agent_uuid)
            await db.execute(select(func.pg_advisory_xact_lock(fresh_conversation_key(caller.user_id, agent_uuid))))
            fresh = await db.scalar(
                select(Conversation)
                .where(
                    Conversation.user_id == caller.user_id,
                    Conversation.agent_id == agent_uuid,
                    Conversation.message_count == 0,
                    Conversation.archived.is_(False),
                )
                .order_by(Conversation.create_time.desc(), Conversation.id.desc())
                .limit(1)
            )
            if fresh is not None:
                return fresh, False
            return await self._add_conversation(db, caller, agent_uuid, uuid.uuid4()), True

    async def update_conversation(
        self, caller: Caller, conversation_id: str, changes: ConversationChanges, paths: list[str]
    ) -> Conversation:
        """Apply the fields named in paths (title, archived, pinned, metadata) and bump update_time.

        New metadata replaces the whole map, as OpenAI's update does; it is
        checked only when named, like any field the mask leaves out is ignored.
        """
        v = Violations()
        cid = v.uuid("conversation.id", conversation_id)
        paths = v.update_mask(paths, UPDATABLE_PATHS)
        title = v.text("conversation.title", changes.title, max_length=MAX_TITLE_LENGTH)
        metadata = v.metadata("conversation.metadata", changes.metadata) if "metadata" in paths else {}
        v.raise_if_any()
        assert cid is not None
        async with self._db.transaction() as db:
            conversation = await owned_conversation(db, cid, caller.user_id, for_update=True)
            if "title" in paths:
                conversation.title = title
            if "archived" in paths:
                conversation.archived = changes.archived
            if "pinned" in paths:
                conversation.pinned = changes.pinned
            if "metadata" in paths:
                conversation.metadata_ = metadata
            conversation.update_time = utcnow()
        self._emit(ConversationChanged(cid))
        return conversation

    async def delete_conversation(self, caller: Caller, conversation_id: str) -> None:
        """Delete the conversation; its messages go with it (ON DELETE CASCADE)."""
        cid = only_uuid("conversation_id", conversation_id)
        async with self._db.transaction() as db:
            await db.delete(await owned_conversation(db, cid, caller.user_id))
        self._emit(ConversationDeleted(cid))

    async def cleanup_own_empty_conversations(self, caller: Caller, older_than: timedelta | None) -> int:
        """CleanupEmptyConversations for the caller; older_than None means 24 hours."""
        return await self.cleanup_empty_conversations(
            caller.user_id, DEFAULT_EMPTY_AGE if older_than is None else older_than
        )

    async def cleanup_empty_conversations(self, user_id: uuid.UUID | None, older_than: timedelta) -> int:
        """Delete conversations without messages created more than older_than ago.

        user_id None means every user's (AdminService). A conversation that
        gets a message concurrently is kept: CreateMessage holds its row lock,
        and the DELETE re-checks message_count after waiting for it.
        """
        v = Violations()
        if older_than < timedelta(0):
            v.add("older_than", "must not be negative")
        v.raise_if_any()
        try:
            cutoff = utcnow() - older_than
        except OverflowError:  # older than the calendar: nothing can be
            return 0
        stmt = delete(Conversation).where(Conversation.message_count == 0, Conversation.create_time < cutoff)
        if user_id is not None:
            stmt = stmt.where(Conversation.user_id == user_id)
        return await self._delete(stmt)

    async def delete_all_conversations(self, caller: Caller) -> int:
        """Delete every conversation of the caller (PortabilityService.DeleteAllConversations)."""
        return await self._delete(delete(Conversation).where(Conversation.user_id == caller.user_id))

    async def _delete(self, stmt: Delete) -> int:
        """Run a DELETE of conversations and tell each one's watchers; returns how many went."""
        async with self._db.transaction() as db:
            deleted = list((await db.execute(stmt.returning(Conversation.id))).scalars())
        self._emit(*(ConversationDeleted(cid) for cid in deleted))
        return len(deleted)

    # -- messages -------------------------------------------------------------

    async def create_message(
        self, caller: Caller, conversation_id: str, role: MessageRole | None, content: str, request_id: str
    ) -> MessageView:
        """Append a COMPLETE message; a retried request_id returns the first and changes nothing.

        role None stands for a role the request could not name (UNSPECIFIED
        or unknown), which is invalid.
        """
        v = Violations()
        cid = v.uuid("conversation_id", conversation_id)
        if role is None:
            v.add("role", "must be USER, ASSISTANT or SYSTEM")
        message_content(v, "content", content)
        v.request_id("request_id", request_id)
        v.raise_if_any()
        assert cid is not None and role is not None
        new_id = uuid.uuid4()
        outcome = await self._message_writes.submit(
            _NewMessage(cid, caller.user_id, new_id, role.value, content, utcnow(), request_id or None)
        )
        if not outcome[0]:
            raise conversation_not_found()
        if outcome[1] is None:  # a replay the statement could not answer: read in one that can see it
            replayed = await self._db.fetch(sql.REPLAYED_MESSAGE, caller.user_id, request_id, into=MessageView.of)
            if not replayed:  # ClearMessages (or a deleted conversation) removed it since
                raise message_not_found(
                    "the message this request_id created was deleted since; retry with a new request_id"
                )
            return replayed[0]
        message = MessageView.of(outcome[1:])
        if message.id == new_id:  # created now, not replayed
            self._emit(MessageCreated(cid, message.id), ConversationChanged(cid))
        return message

    async def _write_messages(self, batch: list[_NewMessage]) -> list[tuple[Any, ...]]:
        """A batch of CreateMessage writes in one statement (sql.CREATE_MESSAGES), a record per message.

        Concurrent creates were one statement each, so one commit (a WAL
        flush) and one round trip each; gathered, a burst of 64 costs a few.
        """
        return await self._db.fetch(sql.CREATE_MESSAGES, *map(list, zip(*batch, strict=True)), into=tuple)

    async def list_messages(
        self, caller: Caller, conversation_id: str, page_size: int, page_token: str, *, all_branches: bool = False
    ) -> Page[ListedMessage]:
        """The active path (every message with all_branches), oldest first, with
        each message's siblings; keyset-paginated on seq, a page also stops at a
        byte budget. One statement (sql.py); an empty page is checked for
        ownership afterwards, so a foreign conversation is NOT_FOUND."""
        v = Violations()
        cid = v.uuid("conversation_id", conversation_id)
        size = Paginator.page_size(v, page_size)
        v.raise_if_any()
        assert cid is not None
        # A page token names its listing (tokens of the active path keep the
        # scope they had before all_branches existed).
        scope = json.dumps(["ListMessages", str(caller.user_id), str(cid), *(["all"] if all_branches else [])])
        keyset = self._paginator.decode(v, page_token, scope, 1)
        v.raise_if_any()
        after = 0 if keyset is None else int(keyset[0])
        statement = sql.ALL_MESSAGES_PAGE if all_branches else sql.ACTIVE_PATH_PAGE
        rows = await self._db.fetch(statement, cid, caller.user_id, after, size + 1, into=ListedMessage.of)
        if not rows:
            await owned_conversation_view(self._db, cid, caller.user_id)
        return self._paginator.page(rows, _fitting(rows, size), scope, lambda m: (str(m.seq),))

    async def switch_branch(self, caller: Caller, message_id: str) -> ConversationView:
        """Make the branch through the message active: the conversation's
        active leaf becomes the message's newest descendant (the newest child
        at each level). Watchers get the conversation."""
        mid = only_uuid("message_id", message_id)
        found = await self._db.fetch(sql.SWITCH_BRANCH, mid, caller.user_id, utcnow(), into=ConversationView.of)
        if not found:
            raise message_not_found()
        self._emit(ConversationChanged(found[0].id))
        return found[0]

    async def get_messages_for_agent(
        self, caller: Caller, conversation_id: str, max_messages: int, max_chars: int
    ) -> list[ChatTurn]:
        """GetMessagesForAgent: see `history_for_agent`; 0 budgets mean what SendMessage uses.

        The agent's system prompt is shown to admins only, as GetAgent does:
        other callers get the history without it, though the model gets it too.
        """
        v = Violations()
        cid = v.uuid("conversation_id", conversation_id)
        max_messages = _budget(v, "max_messages", max_messages, DEFAULT_HISTORY_MESSAGES, MAX_HISTORY_MESSAGES)
        max_chars = _budget(v, "max_chars", max_chars, DEFAULT_HISTORY_CHARS, MAX_HISTORY_CHARS)
        v.raise_if_any()
        assert cid is not None
        async with self._db.transaction() as db:
            conversation = await owned_conversation(db, cid, caller.user_id)
            agent = await db.get(Agent, conversation.agent_id)
            assert agent is not None  # agents are soft-deleted, never removed
        return await self.history_for_agent(
            cid, conversation.active_message_id, agent.system_prompt if caller.is_admin else "", max_messages, max_chars
        )

    async def history_for_agent(
        self,
        conversation_id: uuid.UUID,
        leaf: uuid.UUID | None,
        system_prompt: str,
        max_messages: int,
        max_chars: int,
        *,
        root_question: str | None = None,
    ) -> list[ChatTurn]:
        """The turns to send to the model, in chronological order.

        The system prompt (if not blank) comes first and counts against
        neither budget. Then, of the path from the conversation's first
        message down to leaf (other branches are not the model's business;
        None: no message), the newest messages that fit both budgets, dropping the oldest first and keeping whole
        messages, except that the newest message is always kept (cut to its
        last max_chars characters if it alone is larger) so the model always
        sees the latest turn. Messages without content (failed or cancelled
        before any text, an assistant placeholder) are skipped: they tell
        the model nothing. Budgets must be positive.

        root_question is leaf's text when leaf is a user message without a
        parent (a conversation's first question, or an edit of it), as its
        caller just stored it: the path is then that message alone, and
        nothing is read. Every new conversation's first answer starts so.
        """
        rows: list[ChatTurn] = []
        if root_question is not None:
            rows = [ChatTurn("user", root_question)] if root_question else []
        elif leaf is not None:
            rows = await self._db.fetch(sql.HISTORY, leaf, conversation_id, max_messages, max_chars, into=_turn)
        if rows and len(rows[-1].content) > max_chars:
            rows[-1] = ChatTurn(rows[-1].role, rows[-1].content[-max_chars:])
        if system_prompt.strip():
            rows.insert(0, ChatTurn("system", system_prompt))
        return rows

    async def clear_messages(self, caller: Caller, conversation_id: str) -> tuple[Conversation, int]:
        """Delete every message, keep the conversation; returns it and how many were deleted."""
        cid = only_uuid("conversation_id", conversation_id)
        async with self._db.transaction() as db:
            conversation = await owned_conversation(db, cid, caller.user_id, for_update=True)
            result = await db.execute(delete(Message).where(Message.conversation_id == cid))
            conversation.message_count = 0
            conversation.last_message_time = None
            conversation.active_message_id = None
            conversation.update_time = utcnow()
        self._emit(ConversationChanged(cid))
        return conversation, rowcount(result)

    # -- titles ---------------------------------------------------------------

    async def generate_title(self, caller: Caller, conversation_id: str) -> Conversation:
        """Title the conversation from the first user message of its active path; stored and returned.

        The agent is asked when it supports title generation and the caller
        may still use it; its answer goes through the heuristic's clean-up,
        and the heuristic is used when it fails or says nothing usable. No
        transaction is held while the provider works.
        """
        cid = only_uuid("conversation_id", conversation_id)
        async with self._db.transaction() as db:
            conversation = await owned_conversation(db, cid, caller.user_id)
            agent = await self._title_agent(db, caller, conversation.agent_id)
        found = await self._db.fetch(sql.FIRST_QUESTION, cid, TITLE_SOURCE_CHARS, into=lambda record: str(record[0]))
        if not found:
            raise FailedPrecondition("the conversation has no user message to title", reason=Reason.NO_USER_MESSAGE)
        return await self._store_title(caller, cid, await self._title(agent, found[0]))

    async def title_first_exchange(
        self, caller: Caller, conversation_id: uuid.UUID, first_message: str, agent: Agent | None
    ) -> None:
        """The automatic title after a conversation's first exchange.

        ChatService passes the message it just stored and the agent it just
        checked (None: use the heuristic), so nothing is read back first. A
        title the user set while the answer streamed is kept, and a
        conversation deleted meanwhile is left alone. One statement on the
        plain pool, as every new conversation's first answer ends here: with
        a transaction around a locking read and the ORM's update instead,
        1,000 first exchanges at once (2 words each, untitled conversations)
        cost this process 3.75-4.10 s of CPU and PostgreSQL 2.02-2.35 s;
        with the statement 2.00-2.19 s and 1.42-1.66 s (four rounds of each).
        """
        title = await self._title(agent, first_message[:TITLE_SOURCE_CHARS])
        stored = await self._db.fetch(
            sql.TITLE_IF_UNTITLED, conversation_id, caller.user_id, title, utcnow(), into=tuple
        )
        if stored:
            self._emit(ConversationChanged(conversation_id))

    async def _title(self, agent: Agent | None, first_message: str) -> str:
        return (await self._ask_for_title(agent, first_message) if agent else "") or heuristic_title(first_message)

    async def _store_title(self, caller: Caller, cid: uuid.UUID, title: str) -> Conversation:
        """Store title (announced to watchers); the conversation."""
        async with self._db.transaction() as db:
            conversation = await owned_conversation(db, cid, caller.user_id, for_update=True)
            conversation.title = title
            conversation.update_time = utcnow()
        self._emit(ConversationChanged(cid))
        return conversation

    async def _title_agent(self, db: AsyncSession, caller: Caller, agent_id: uuid.UUID) -> Agent | None:
        """The agent to ask for a title: one with title_generation that the caller may use now.

        Asking costs the provider tokens, so an agent the caller lost access
        to (or whose quota is used up) is not asked; the heuristic titles instead.
        """
        try:
            agent = await self._access.require_access(db, caller, agent_id)
        except (PermissionDenied, NotFound, ResourceExhausted):
            return None
        return agent if agent.title_generation else None

    async def _ask_for_title(self, agent: Agent, first_message: str) -> str:
        """The agent's title for first_message, cleaned; empty when it failed or gave nothing usable."""
        turns = [ChatTurn("system", TITLE_INSTRUCTION), ChatTurn("user", first_message)]
        try:
            async with asyncio.timeout(TITLE_TIMEOUT_SECONDS):
                answer = await complete_text(
                    await self._registry.provider_for(agent),
                    turns,
                    max_output_tokens=TITLE_MAX_OUTPUT_TOKENS,
                    temperature=TITLE_TEMPERATURE,
                )
        except (ProviderError, TimeoutError) as exc:
            log.info("agent %s could not title a conversation, using the heuristic: %s", agent.slug, exc)
            return ""
        return clean_title(answer)

    # -- helpers --------------------------------------------------------------

    def _emit(self, *events: Event) -> None:
        """Publish events (call after the commit that made them true)."""
        if self._publish is not None:
            for event in events:
                self._publish(event)

    @staticmethod
    async def _add_conversation(
        db: AsyncSession,
        caller: Caller,
        agent_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        title: str = "",
        metadata: dict[str, str] | None = None,
    ) -> Conversation:
        conversation = Conversation(
            id=conversation_id, user_id=caller.user_id, agent_id=agent_id, title=title, metadata_=metadata or {}
        )
        db.add(conversation)
        await db.flush()
        return conversation

    async def _prefix_tsquery(self, query: str) -> str | None:
        """A to_tsquery text matching documents that contain every word of query as a prefix.

        The words are the lexemes PostgreSQL's own 'simple' parser finds in
        query, so they split exactly like the indexed text (emails, paths,
        hyphenated words) and nothing the user typed is parsed as tsquery
        syntax. None when query has no word at all.
        """
        (found,) = await self._db.fetch(sql.QUERY_LEXEMES, query, into=lambda record: record[0])
        lexemes: list[str] = found or []
        if not lexemes:
            return None
        quoted = ("'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "':*" for lexeme in lexemes)
        return " & ".join(quoted)
