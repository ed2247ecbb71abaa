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
from datetime import datetime

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


def columns(names: tuple[str, ...], alias: str) -> str:
    """A select list of a view's fields read from the table aliased `alias` (chat/sql.py uses it too)."""
    return ", ".join(_column(name, alias) for name in names)


def _column(name: str, alias: str) -> str:
    if name.endswith(MICROSECONDS):
        return f"(extract(epoch FROM {alias}.{name.removesuffix(MICROSECONDS)}) * 1000000)::int8"
    if name.endswith(JSON_TEXT):
        return f"nullif({alias}.{name.removesuffix(JSON_TEXT)}, '{{}}'::jsonb)::text"
    return f"{alias}.{name}"


_CONVERSATION_COLUMNS = columns(ConversationView._fields, "c")

# $1 conversation id, $2 user id.
OWNED_CONVERSATION = (
    f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1::uuid AND c.user_id = $2::uuid"
)

# $1 the text to search for: the lexemes PostgreSQL's 'simple' parser finds in it.
QUERY_LEXEMES = "SELECT tsvector_to_array(to_tsvector('simple'::regconfig, $1::text))"


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
) -> tuple[str, list[object]]:
    """ListConversations' statement and its arguments: the user's, newest activity first.

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
    sql = (
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE {' AND '.join(where)} "
        f"ORDER BY c.update_time DESC, c.id DESC LIMIT {bind(limit)}::integer"
    )
    return sql, bind.values


def _create_message(*, claimed: bool) -> str:
    """CreateMessage in one statement, so in one transaction and one round trip.

    $1 conversation id, $2 user id, $3 the new message's id, $4 role,
    $5 content, $6 the time, and with `claimed` $7 the request id.
    The caller's conversation is locked (FOR UPDATE, as every change of its
    message_count is made), the request id claimed (with `claimed`), the
    message inserted and the conversation's counters bumped. The statement
    answers whether the conversation is the caller's, then the new message's
    columns: NULL when there is none (not the caller's, or a replay of
    request id $7, whose message is read by REPLAYED_MESSAGE).
    """
    source = "owned"
    claim = ""
    message_id = "$3::uuid"
    if claimed:
        claiming = claiming_sql(
            "owned", user_id="$2::uuid", scope="'message'", request_id="$7::text", resource_id="$3::uuid"
        )
        claim = f"claim AS ({claiming}), "
        source = "owned, claim"
        message_id = "claim.resource_id"
    return (
        "WITH owned AS (SELECT id FROM conversations WHERE id = $1::uuid AND user_id = $2::uuid FOR UPDATE), "
        + claim
        + "created AS (INSERT INTO messages (id, conversation_id, role, content, state, failure_reason, "
        "prompt_tokens, completion_tokens, create_time, update_time) "
        f"SELECT {message_id}, owned.id, $4::message_role, $5::text, 'complete', '', 0, 0, "
        f"$6::timestamptz, $6::timestamptz FROM {source} "
        f"RETURNING {', '.join(_MESSAGE_COLUMNS)}), "
        "bumped AS (UPDATE conversations SET message_count = message_count + 1, "
        "last_message_time = $6::timestamptz, update_time = $6::timestamptz "
        "WHERE id IN (SELECT conversation_id FROM created)) "
        f"SELECT EXISTS (SELECT FROM owned), {columns(_MESSAGE_COLUMNS, 'created')} "
        "FROM (VALUES (true)) AS one (x) LEFT JOIN created ON true"
    )


CREATE_MESSAGE = _create_message(claimed=False)
CREATE_MESSAGE_CLAIMED = _create_message(claimed=True)

# $1 user id, $2 request id: the message a replayed CreateMessage returns, if it is still the caller's.
REPLAYED_MESSAGE = (
    f"SELECT {columns(_MESSAGE_COLUMNS, 'm')} FROM messages m JOIN conversations c ON c.id = m.conversation_id "
    "WHERE c.user_id = $1::uuid AND m.id = " + claimed_sql(user_id="$1::uuid", scope="'message'", request_id="$2::text")
)

# $1 conversation id, $2 the newest seq to include, $3 max messages, $4 max
# characters: the newest messages with content that fit both budgets (the
# newest always), oldest first, as (role, content). The window functions do
# the counting, so only the kept messages leave the database. The cut-off
# keeps out what was added after a given message: a send's history ends at
# its own message, however many were sent to the conversation since.
HISTORY = (
    "SELECT role::text, content FROM ("
    "SELECT role, content, row_number() OVER newest AS rank, sum(char_length(content)) OVER newest AS chars "
    "FROM messages WHERE conversation_id = $1::uuid AND content <> '' AND seq <= $2::bigint "
    "WINDOW newest AS (ORDER BY seq DESC)) AS ranked "
    "WHERE rank <= $3::bigint AND (chars <= $4::bigint OR rank = 1) ORDER BY rank DESC"
)
