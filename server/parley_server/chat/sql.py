"""The SQL that starts and ends an exchange, run on the plain asyncpg pool (Database.fetch).

Every SendMessage starts an exchange and every generation ends one; through
SQLAlchemy (a session, BEGIN and COMMIT, statements keyed and compiled, ORM
loading) that was most of the server's fixed CPU cost per exchange. Here it
is three statements, each committed on its own:

- `EXCHANGE_FACTS`: the caller's conversation with its live agent and the
  facts of the caller's access to it (a live grant, today's message count)
  and, with a request id, the exchange it already claimed; for every start
  that arrived while the last such read ran, in one statement (the
  service's Batcher). The decision is access_rules.rule's, made in Python
  from these facts.
- `start_exchange`: lock the conversation, take the quota (when one
  applies), insert the user's message (none for a regeneration) and the
  assistant's placeholder where the exchange goes in the message tree,
  bump the conversation's counters and active leaf and claim the request
  id: all or nothing. (RegenerateMessage and EditMessage first read the
  message they start from: `EXCHANGE_TARGET`.)
- `END_EXCHANGE`: store the final text and state, and add the answer's
  tokens (and the message, when no quota counted it) to the usage rollup.

The history the model gets is read after the start, by the generation
(conversations/sql.py's HISTORY: the path up from the message it answers),
except for a question without a parent, whose path is itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from parley_server.agents.usage_sql import adding_usage_sql, taking_quota_sql
from parley_server.common.idempotency import claimed_sql, claiming_sql
from parley_server.conversations.sql import columns
from parley_server.conversations.views import MessageView
from parley_server.db.database import Binds
from parley_server.db.models import Agent, AgentProvider, AgentVisibility

_AGENT_COLUMNS = tuple(column.name for column in Agent.__table__.c)
_MESSAGE_COLUMNS = MessageView._fields


def chat_scope(conversation_id: uuid.UUID) -> str:
    """The idempotency scope of SendMessage's request ids: one per conversation."""
    return f"chat:{conversation_id}"


# $1 conversation ids, $2 user ids, $3 idempotency scopes (chat_scope), $4
# request ids ('' for none), $5 times, $6 UTC days: arrays, one element per
# start. A row for each start whose conversation is its caller's (none
# otherwise), led by the start's position (1-based), then the agent's
# columns (NULL when it is deleted), whether the caller holds a live grant
# for it, the messages the caller sent to it that day, and the assistant
# message id the request id already claimed (or NULL).
EXCHANGE_FACTS = (
    f"SELECT s.position, {columns(_AGENT_COLUMNS, 'a')}, "
    "EXISTS (SELECT FROM agent_grants g WHERE g.user_id = s.user_id AND g.agent_id = a.id "
    "AND (g.expire_time IS NULL OR g.expire_time > s.at)), "
    "coalesce((SELECT u.message_count FROM usage_daily u WHERE u.user_id = s.user_id AND u.agent_id = a.id "
    "AND u.day = s.day), 0), "
    "CASE WHEN s.request_id = '' THEN NULL::uuid ELSE "
    + claimed_sql(user_id="s.user_id", scope="s.scope", request_id="s.request_id")
    + " END "
    "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::date[]) WITH ORDINALITY "
    "AS s (conversation_id, user_id, scope, request_id, at, day, position) "
    "JOIN conversations c ON c.id = s.conversation_id AND c.user_id = s.user_id "
    "LEFT JOIN agents a ON a.id = c.agent_id AND a.delete_time IS NULL"
)


def agent_of(record: Sequence[Any]) -> Agent | None:
    """The agent in a record of EXCHANGE_FACTS without its position (attached to no session); None when deleted."""
    fields: dict[str, Any] = dict(zip(_AGENT_COLUMNS, record, strict=False))
    if fields["id"] is None:
        return None
    fields["visibility"] = AgentVisibility(fields["visibility"])
    fields["provider"] = AgentProvider(fields["provider"])
    return Agent(**fields)


def granted_used_claimed(record: Sequence[Any]) -> tuple[bool, int, uuid.UUID | None]:
    """The access facts and the claimed exchange in a record of EXCHANGE_FACTS (without its position)."""
    granted, used_today, claimed = record[len(_AGENT_COLUMNS) :]
    return bool(granted), int(used_today), claimed


def start_exchange(
    *,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID,
    user_message: tuple[uuid.UUID, str] | None,
    assistant_id: uuid.UUID,
    sibling_of: uuid.UUID | None,
    now: datetime,
    owner: int,
    quota: tuple[date, int] | None,
    request_id: str,
) -> tuple[str, list[object]]:
    """The statement starting an exchange, and its arguments.

    An exchange adds user_message (its id and text), unless it is None (a
    regeneration: the answer is a new sibling of the answer sibling_of), and
    the assistant's placeholder answering it. The first new message is
    appended after the conversation's active leaf, or with sibling_of
    becomes that message's sibling (same parent); the answer becomes the
    active leaf. The conversation is locked (as every change of its
    message_count is made), so concurrent exchanges are serialised and their
    messages' seq follow that order. With quota (today, the limit) one
    message is counted against it, and nothing is written when it is used
    up. With request_id the assistant message's id is claimed for it, last:
    when a concurrent call claimed it first, the statement fails with a
    unique violation and writes nothing.

    One row: whether the conversation is the caller's, whether sibling_of is
    still in it (true without), whether the quota counted the message (true
    without quota), the conversation's message_count and title before this
    exchange, the new user message's create_time and update_time (NULL when
    nothing was written or there is none), and the parent of the first new
    message.
    """
    bind = Binds()
    cid, uid, at = f"{bind(conversation_id)}::uuid", f"{bind(user_id)}::uuid", f"{bind(now)}::timestamptz"
    assistant_mid = f"{bind(assistant_id)}::uuid"
    steps = [
        "owned AS (SELECT id, message_count, title, active_message_id FROM conversations "
        f"WHERE id = {cid} AND user_id = {uid} FOR UPDATE)"
    ]
    if sibling_of is None:
        steps.append("place AS (SELECT active_message_id AS parent FROM owned)")
    else:
        steps.append(
            "place AS (SELECT m.parent_id AS parent FROM owned JOIN messages m ON m.conversation_id = owned.id "
            f"WHERE m.id = {bind(sibling_of)}::uuid)"
        )
    sources, counted = "owned, place", "true"
    if quota is not None:
        day, limit = quota
        taking = taking_quota_sql(
            "owned, place",
            user_id=uid,
            agent_id=f"{bind(agent_id)}::uuid",
            day=f"{bind(day)}::date",
            quota=f"{bind(limit)}::bigint",
        )
        steps.append(f"counted AS ({taking})")
        sources, counted = "owned, place, counted", "EXISTS (SELECT FROM counted)"
    # Each new message: its parent is the user message when it follows one, else the place's.
    rows = [f"({assistant_mid}, 'assistant'::message_role, '', 'streaming'::message_state, {bind(owner)}::bigint, "]
    user_mid = "NULL::uuid"
    if user_message is None:
        rows[0] += "false)"
    else:
        user_mid = f"{bind(user_message[0])}::uuid"
        rows[0] += "true)"
        rows.insert(
            0,
            f"({user_mid}, 'user'::message_role, {bind(user_message[1])}::text, 'complete'::message_state, "
            "NULL::bigint, false)",
        )
    steps.append(
        "created AS (INSERT INTO messages (id, conversation_id, role, content, state, failure_reason, "
        "prompt_tokens, completion_tokens, generation_owner, parent_id, create_time, update_time) "
        f"SELECT m.id, owned.id, m.role, m.content, m.state, '', 0, 0, m.owner, "
        f"CASE WHEN m.after_user THEN {user_mid} ELSE place.parent END, {at}, {at} "
        f"FROM {sources}, (VALUES {', '.join(rows)}) AS m (id, role, content, state, owner, after_user) "
        "RETURNING id, conversation_id, create_time, update_time)"
    )
    steps.append(
        f"bumped AS (UPDATE conversations SET message_count = message_count + {len(rows)}, "
        f"last_message_time = {at}, update_time = {at}, active_message_id = {assistant_mid} "
        "WHERE id IN (SELECT conversation_id FROM created))"
    )
    if request_id:
        claiming = claiming_sql(
            f"created WHERE id = {assistant_mid}",
            user_id=uid,
            scope=f"{bind(chat_scope(conversation_id))}::text",
            request_id=f"{bind(request_id)}::text",
            resource_id="id",
            conflict_fails=True,
        )
        steps.append(f"claimed AS ({claiming})")
    sql = (
        f"WITH {', '.join(steps)} "
        f"SELECT EXISTS (SELECT FROM owned), EXISTS (SELECT FROM place), {counted}, owned.message_count, owned.title, "
        "created.create_time, created.update_time, place.parent "
        "FROM (VALUES (true)) AS one (x) LEFT JOIN owned ON true LEFT JOIN place ON true "
        f"LEFT JOIN created ON created.id = {user_mid}"
    )
    return sql, bind.values


# $1 message id, $2 user id: a message of the caller's that an exchange
# starts from (regenerated, or edited): its conversation, role and state,
# then its parent (MessageView's columns, NULLs for a root).
EXCHANGE_TARGET = (
    f"SELECT m.conversation_id, m.role::text, m.state::text, {columns(_MESSAGE_COLUMNS, 'p')} "
    "FROM messages m JOIN conversations c ON c.id = m.conversation_id LEFT JOIN messages p ON p.id = m.parent_id "
    "WHERE m.id = $1::uuid AND c.user_id = $2::uuid"
)


# $1 user id, $2 scope, $3 request id: the user message (MessageView's
# columns) and the assistant message's id of the exchange that request id
# started, if both its messages remain.
CLAIMED_EXCHANGE = (
    f"SELECT {columns(_MESSAGE_COLUMNS, 'u')}, a.id FROM messages a JOIN messages u ON u.id = a.parent_id "
    "WHERE a.id = " + claimed_sql(user_id="$1::uuid", scope="$2::text", request_id="$3::text")
)

# $1 message id, $2 final text, $3 state, $4 failure reason, $5 prompt
# tokens, $6 completion tokens, $7 user id, $8 agent id, $9 the UTC day,
# $10 messages to count (0 when the quota counted it already). The end of a
# generation unless it already ended (cancelled or failed by another replica
# meanwhile), with its usage, in one statement: the final message (MessageView's
# columns), or no row.
END_EXCHANGE = (
    "WITH ended AS (UPDATE messages SET content = $2::text, state = $3::message_state, failure_reason = $4::text, "
    "prompt_tokens = $5::bigint, completion_tokens = $6::bigint, generation_owner = NULL, update_time = now() "
    f"WHERE id = $1::uuid AND state = 'streaming' RETURNING {', '.join(_MESSAGE_COLUMNS)}), "
    "used AS ("
    + adding_usage_sql(
        "ended",
        user_id="$7::uuid",
        agent_id="$8::uuid",
        day="$9::date",
        messages="$10::bigint",
        prompt_tokens="$5::bigint",
        completion_tokens="$6::bigint",
    )
    + f") SELECT {', '.join(_MESSAGE_COLUMNS)} FROM ended"
)

# $1 message id: the message as END_EXCHANGE returns it (for a follower of
# an answer that ended elsewhere, and to tell whether an earlier attempt to
# end it, whose answer was lost with its connection, stored it).
MESSAGE = f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages WHERE id = $1::uuid"

# $1 message ids, $2 their texts so far: the streaming text of many
# generations in one statement (the flusher's, every persist interval).
PERSIST_TEXTS = (
    "UPDATE messages AS m SET content = f.body, update_time = now() "
    "FROM unnest($1::uuid[], $2::text[]) AS f (id, body) WHERE m.id = f.id AND m.state = 'streaming'"
)
