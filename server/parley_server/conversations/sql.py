"""The SQL of conversations' hot paths, run on the plain asyncpg pool (Database.fetch).

GetConversation, ListConversations and CreateMessage are the RPCs a client
calls most; SQLAlchemy's per-statement work (and the ORM's per-row work)
cost them more CPU than everything else together. The SQL for the
conversations and messages tables lives here, beside the domain that owns
them; each text is fixed (ListConversations' filters pick one of a few), so
asyncpg prepares it once per connection. Column lists are the fields of
conversations/views.py's read models, which read records by position.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from parley_server.common.idempotency import claimed_sql, claiming_sql
from parley_server.conversations.views import ConversationView, MessageView
from parley_server.db.database import Binds

# The columns each view reads, in its order (views read records by position).
_MESSAGE_COLUMNS = MessageView._fields
# A view's field named so holds the timestamptz column named without the
# suffix, as microseconds since the Unix epoch (exact: extract gives a
# numeric since PostgreSQL 14).
MICROSECONDS = "_us"
# A view's field named so holds the jsonb column named without the suffix as
# JSON text, NULL when it is the empty object: most conversations have no
# metadata, and their rows then cost no JSON parsing.
JSON_TEXT = "_json"
# A view's field named so holds the row's xmin (db/versioned_rows.py).
ROW_VERSION = "version"


def columns(names: tuple[str, ...], alias: str) -> str:
    """A select list of a view's fields read from the table aliased `alias` (chat/sql.py uses it too)."""
    return ", ".join(_column(name, alias) for name in names)


def _column(name: str, alias: str) -> str:
    if name == ROW_VERSION:
        return f"{alias}.xmin"
    if name.endswith(MICROSECONDS):
        return f"(extract(epoch FROM {alias}.{name.removesuffix(MICROSECONDS)}) * 1000000)::int8"
    if name.endswith(JSON_TEXT):
        return f"nullif({alias}.{name.removesuffix(JSON_TEXT)}, '{{}}'::jsonb)::text"
    return f"{alias}.{name}"


_CONVERSATION_COLUMNS = columns(ConversationView._fields, "c")

# $1 conversation id, $2 user id: the row's xmin (db/versioned_rows.py).
OWNED_CONVERSATION_VERSION = "SELECT c.xmin FROM conversations c WHERE c.id = $1::uuid AND c.user_id = $2::uuid"
# $1 conversation id, $2 user id.
OWNED_CONVERSATION = (
    f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1::uuid AND c.user_id = $2::uuid"
)

# $1 the text to search for: the lexemes PostgreSQL's 'simple' parser finds in it.
QUERY_LEXEMES = "SELECT tsvector_to_array(to_tsvector('simple'::regconfig, $1::text))"


class ConversationsPage(NamedTuple):
    """A page's two statements, which take the same arguments: `version`
    answers the text `rows_version` makes of the rows (their ids and xmins,
    db/versioned_rows.py), `rows` reads the rows whole (ConversationView's
    columns)."""

    version: str
    rows: str
    args: list[object]


def rows_version(rows: Iterable[ConversationView]) -> str:
    """The text a page's `version` statement answers for these rows, in their order ("" for none)."""
    return " ".join(f"{row.id}/{row.version}" for row in rows)


def conversations_page(
    user_id: uuid.UUID,
    *,
    agent_id: uuid.UUID | None,
    archived: bool | None,
    pinned: bool | None,
    tsquery: str | None,
    metadata: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> ConversationsPage:
    """ListConversations' statements and their arguments: the user's, newest activity first.

    Ordered by (update_time, id) descending, strictly after `after`, as the
    index ix_conversations_user_update is. tsquery (a to_tsquery text) matches
    the title or any message; it is bound, never interpolated. metadata (a
    jsonb object's text) must be contained in the conversation's metadata,
    a test ix_conversations_metadata answers.
    """
    bind = Binds()
    where = [f"c.user_id = {bind(user_id)}::uuid"]
    if agent_id is not None:
        where.append(f"c.agent_id = {bind(agent_id)}::uuid")
    if archived is not None:
        where.append(f"c.archived = {bind(archived)}::boolean")
    if pinned is not None:
        where.append(f"c.pinned = {bind(pinned)}::boolean")
    if metadata is not None:
        where.append(f"c.metadata @> {bind(metadata)}::jsonb")
    if after is not None:
        where.append(f"(c.update_time, c.id) < ({bind(after[0])}::timestamptz, {bind(after[1])}::uuid)")
    if tsquery is not None:
        query = f"to_tsquery('simple'::regconfig, {bind(tsquery)}::text)"
        where.append(
            f"(c.title_search @@ {query} OR EXISTS "
            f"(SELECT FROM messages m WHERE m.conversation_id = c.id AND m.content_search @@ {query}))"
        )
    rest = (
        f" FROM conversations c WHERE {' AND '.join(where)} "
        f"ORDER BY c.update_time DESC, c.id DESC LIMIT {bind(limit)}::integer"
    )
    version = (
        "SELECT coalesce(string_agg(k.id::text || '/' || k.xmin::text, ' ' "
        "ORDER BY k.update_time DESC, k.id DESC), '') "
        f"FROM (SELECT c.id, c.xmin, c.update_time{rest}) k"
    )
    return ConversationsPage(version, f"SELECT {_CONVERSATION_COLUMNS}{rest}", bind.values)


# CreateMessage for a batch of messages (db/batching.py), each in a
# conversation of its own, in one statement: one transaction and one round
# trip. $1 conversation ids, $2 user ids, $3 the new messages' ids, $4
# roles, $5 contents, $6 times, $7 request ids (NULL for none): arrays, one
# element per message. A replay of a request id whose first call the
# statement's snapshot sees (it committed before) gets the message that call
# created, and changes nothing. For every other message, its caller's
# conversation is locked (FOR UPDATE, as every change of its message_count
# is made; in id order, so two batches never wait for each other's locks in
# a cycle), its request id claimed, its message inserted after the
# conversation's active leaf and the conversation's counters and active leaf
# (now the message) bumped. The statement answers, per message in order:
# whether its conversation is the caller's, then the columns of the new or
# replayed message; NULL when there is none: not the caller's, or a replay
# whose first call the snapshot cannot see (it committed while this
# statement waited for its key) or whose message was deleted since, to be
# read by REPLAYED_MESSAGE.
_CREATING = claiming_sql(
    "owned WHERE owned.request_id IS NOT NULL",
    user_id="owned.user_id",
    scope="'message'",
    request_id="owned.request_id",
    resource_id="owned.message_id",
)
CREATE_MESSAGES = (
    "WITH batch AS (SELECT b.*, "
    # The message a request id already names (a scalar subquery on the key's primary index).
    + claimed_sql(user_id="b.user_id", scope="'message'", request_id="b.request_id")
    + " AS replayed FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::message_role[], $5::text[], "
    "$6::timestamptz[], $7::text[]) WITH ORDINALITY "
    "AS b (conversation_id, user_id, message_id, role, content, at, request_id, position)), "
    # Each conversation by its primary key, locked in id order: a join was
    # planned, on a new database's near-empty tables, as a scan of them all.
    # A replay the snapshot sees locks nothing: a batch of them writes nothing.
    "owned AS (SELECT c.id, c.active_message_id, b.user_id, b.message_id, b.role, b.content, b.at, b.request_id "
    "FROM (SELECT * FROM batch WHERE replayed IS NULL ORDER BY conversation_id) AS b CROSS JOIN LATERAL ("
    "SELECT id, active_message_id FROM conversations "
    "WHERE id = b.conversation_id AND user_id = b.user_id FOR UPDATE) AS c), "
    f"claim AS ({_CREATING}), "
    "created AS (INSERT INTO messages (id, conversation_id, role, content, state, failure_reason, "
    "prompt_tokens, completion_tokens, parent_id, create_time, update_time) "
    "SELECT owned.message_id, owned.id, owned.role, owned.content, 'complete', '', 0, 0, owned.active_message_id, "
    "owned.at, owned.at FROM owned "
    "WHERE owned.request_id IS NULL OR owned.message_id IN (SELECT resource_id FROM claim) "
    f"RETURNING {', '.join(_MESSAGE_COLUMNS)}), "
    "bumped AS (UPDATE conversations SET message_count = message_count + 1, "
    "last_message_time = created.create_time, update_time = created.create_time, active_message_id = created.id "
    "FROM created WHERE conversations.id = created.conversation_id), "
    # Keyed by the id each call asked for: a new message has it, a replayed one stands in for it.
    f"answered AS (SELECT created.id AS asked, {columns(_MESSAGE_COLUMNS, 'created')} FROM created "
    # A replay's message by its primary key, in a LATERAL subquery that
    # LIMIT keeps from being flattened into a join, then its conversation's
    # owner by primary key (a scalar subquery). As joins, these were planned
    # on a new database's empty tables as scans: of every message, hashed;
    # and of the caller's conversations, each of which repeated the key
    # lookup of every row of the batch (896 lookups for a batch of 14 of a
    # user with 64 conversations: 4.7 ms of the statement's 6.1).
    f"UNION ALL SELECT b.message_id, {columns(_MESSAGE_COLUMNS, 'm')} FROM batch b "
    "CROSS JOIN LATERAL (SELECT * FROM messages WHERE id = b.replayed LIMIT 1) AS m "
    "WHERE (SELECT user_id FROM conversations WHERE id = m.conversation_id) = b.user_id) "
    "SELECT CASE WHEN b.replayed IS NULL THEN EXISTS (SELECT FROM owned WHERE owned.id = b.conversation_id) "
    "ELSE coalesce((SELECT user_id FROM conversations WHERE id = b.conversation_id) = b.user_id, false) END, "
    f"{columns(_MESSAGE_COLUMNS, 'a')} "
    "FROM batch b LEFT JOIN answered a ON a.asked = b.message_id ORDER BY b.position"
)

# $1 user id, $2 request id: the message a replayed CreateMessage returns, if it is still the caller's.
# CREATE_MESSAGES states the same rule for each replay of a batch, by
# primary keys one at a time: with this text shared, as a WHERE clause, its
# generic plan on a new database's empty tables scanned every message.
REPLAYED_MESSAGE = (
    f"SELECT {columns(_MESSAGE_COLUMNS, 'm')} FROM messages m JOIN conversations c ON c.id = m.conversation_id "
    "WHERE c.user_id = $1::uuid AND m.id = " + claimed_sql(user_id="$1::uuid", scope="'message'", request_id="$2::text")
)

# $1 the newest message, $2 its conversation id, $3 max messages, $4 max
# characters: the messages on the path up from $1 (itself included) with
# content that fit both budgets (the newest always), oldest first, as (role,
# content). The walk counts as it goes and stops once the budgets are spent,
# so a long path is not read further than the model gets it.
HISTORY = (
    "WITH RECURSIVE path AS ("
    "SELECT m.parent_id, m.role, m.content, 1 AS depth, (m.content <> '')::int AS kept, "
    "char_length(m.content)::bigint AS chars FROM messages m WHERE m.id = $1::uuid AND m.conversation_id = $2::uuid "
    "UNION ALL "
    "SELECT m.parent_id, m.role, m.content, p.depth + 1, p.kept + (m.content <> '')::int, "
    "p.chars + char_length(m.content) FROM path p JOIN messages m ON m.id = p.parent_id "
    "WHERE p.kept < $3::bigint AND p.chars <= $4::bigint) "
    "SELECT role::text, content FROM path WHERE content <> '' AND kept <= $3::bigint "
    "AND (chars <= $4::bigint OR kept = 1) ORDER BY depth DESC"
)

# $1 conversation id, $2 max characters: the start of the first user
# message on the conversation's active path (no row without one), what
# GenerateTitle titles: after an edit of the first question, the edited one.
FIRST_QUESTION = (
    "WITH RECURSIVE path AS ("
    "SELECT m.id, m.parent_id, m.role, 1 AS depth FROM conversations c "
    "JOIN messages m ON m.id = c.active_message_id WHERE c.id = $1::uuid "
    "UNION ALL "
    "SELECT m.id, m.parent_id, m.role, p.depth + 1 FROM path p JOIN messages m ON m.id = p.parent_id) "
    "SELECT left(m.content, $2::int) FROM path p JOIN messages m ON m.id = p.id "
    "WHERE p.role = 'user' ORDER BY p.depth DESC LIMIT 1"
)

# The columns ListMessages reads from a message aliased p: MessageView's,
# seq (its page keyset), and how many siblings it has and its place among
# them (roots of a conversation are siblings too; each side of the union is
# an index scan, the second only for a root).
_LISTED_COLUMNS = (
    f"{columns(_MESSAGE_COLUMNS, 'p')}, p.seq, s.sibling_count, s.sibling_index FROM ({{page}}) AS p "
    "CROSS JOIN LATERAL (SELECT count(*)::int4 AS sibling_count, "
    "(count(*) FILTER (WHERE sibling.seq < p.seq))::int4 AS sibling_index FROM ("
    "SELECT seq FROM messages WHERE parent_id = p.parent_id UNION ALL "
    "SELECT seq FROM messages WHERE p.parent_id IS NULL AND conversation_id = p.conversation_id "
    "AND parent_id IS NULL) AS sibling) AS s ORDER BY p.seq"
)
_PAGE_COLUMNS = columns((*_MESSAGE_COLUMNS, "seq"), "m")


def messages_page(*, all_branches: bool) -> str:
    """ListMessages' statement: $1 conversation id, $2 user id, $3 the last seq
    of the previous page (0 for the first), $4 the most rows.

    The caller's conversation's active path (walked up from its active leaf,
    one index lookup per message), or with all_branches every message; oldest
    first, each with its siblings (ListedMessage's columns). No rows for a
    conversation that is empty or not the caller's.
    """
    if all_branches:
        page = (
            f"SELECT {_PAGE_COLUMNS} FROM messages m "
            "JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.conversation_id = $1::uuid AND c.user_id = $2::uuid AND m.seq > $3::bigint "
            "ORDER BY m.seq LIMIT $4::integer"
        )
        return "SELECT " + _LISTED_COLUMNS.format(page=page)
    path = (
        f"path AS (SELECT {_PAGE_COLUMNS} FROM conversations c "
        "JOIN messages m ON m.id = c.active_message_id WHERE c.id = $1::uuid AND c.user_id = $2::uuid "
        f"UNION ALL SELECT {_PAGE_COLUMNS} "
        "FROM path JOIN messages m ON m.id = path.parent_id)"
    )
    page = "SELECT * FROM path WHERE seq > $3::bigint ORDER BY seq LIMIT $4::integer"
    return f"WITH RECURSIVE {path} SELECT " + _LISTED_COLUMNS.format(page=page)


ACTIVE_PATH_PAGE = messages_page(all_branches=False)
ALL_MESSAGES_PAGE = messages_page(all_branches=True)

# $1 conversation id, $2 user id, $3 title, $4 the time: the automatic
# title of the caller's conversation, unless it has one by now (the user
# set it while the first answer streamed); a row when it was stored.
TITLE_IF_UNTITLED = (
    "UPDATE conversations SET title = $3::text, update_time = $4::timestamptz "
    "WHERE id = $1::uuid AND user_id = $2::uuid AND title = '' RETURNING id"
)

# $1 message id, $2 user id, $3 the time: make the branch through the
# caller's message active. The new leaf is the message's newest descendant,
# following the newest child (largest seq) down from it. The conversation
# as it is then (ConversationView's columns), or no row.
SWITCH_BRANCH = (
    "WITH RECURSIVE target AS (SELECT m.id, m.conversation_id FROM messages m "
    "JOIN conversations c ON c.id = m.conversation_id WHERE m.id = $1::uuid AND c.user_id = $2::uuid), "
    "down AS (SELECT id, 0 AS depth FROM target UNION ALL "
    "SELECT (SELECT child.id FROM messages child WHERE child.parent_id = down.id ORDER BY child.seq DESC LIMIT 1), "
    "down.depth + 1 FROM down WHERE down.id IS NOT NULL) "
    "UPDATE conversations AS c SET update_time = $3::timestamptz, active_message_id = "
    "(SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1) "
    f"FROM target WHERE c.id = target.conversation_id RETURNING {_CONVERSATION_COLUMNS}"
)
