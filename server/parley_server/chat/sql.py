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
- `START_EXCHANGES`: lock the conversation, take the quota (when one
  applies), insert the user's message (none for a regeneration) and the
  assistant's placeholder where the exchange goes in the message tree,
  bump the conversation's counters and active leaf and claim the request
  id: all or nothing; for every start that arrived while the last such
  write ran, in one statement (group commit, as CreateMessage's).
  (RegenerateMessage and EditMessage first read the message they start
  from: `EXCHANGE_TARGET`.)
- `END_EXCHANGE`: store the final text and state, and add the answer's
  tokens (and the message, when no quota counted it) to the usage rollup.

The history the model gets is read after the start, by the generation
(conversations/sql.py's HISTORY: the path up from the message it answers),
except for a question without a parent, whose path is itself.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from parley_server.agents.usage_sql import adding_usage_sql, taking_quota_sql
from parley_server.common.idempotency import claimed_sql, claiming_sql
from parley_server.conversations.sql import columns
from parley_server.conversations.views import MessageView
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


# Distinct agent rows whose Agent is kept (agent_of): a process's agents,
# each in the versions its starts have read lately.
AGENTS_KEPT = 256


def agent_of(record: Sequence[Any]) -> Agent | None:
    """The agent in a record of EXCHANGE_FACTS without its position (attached
    to no session, shared: never changed); None when deleted."""
    row = tuple(record[: len(_AGENT_COLUMNS)])
    return None if row[0] is None else _agent(row)


@functools.lru_cache(maxsize=AGENTS_KEPT)
def _agent(row: tuple[Any, ...]) -> Agent:
    """The Agent of these column values, made once per distinct row.

    Every start reads its agent's row, nearly always one read before, and a
    mapped instance costs SQLAlchemy's instrumentation about 50 us to build:
    in the first second of a burst of 1,000 SendMessage calls
    (scripts/bench_chat.py, py-spy) that was 6.5% of the event loop's time,
    three fifths of what the starts themselves spent. Keyed by every
    column, so a change to any of them (an update bumps version and
    update_time too) is a new row and a new Agent: what is kept is what was
    read, never a guess at what is stored.
    """
    fields: dict[str, Any] = dict(zip(_AGENT_COLUMNS, row, strict=True))
    fields["visibility"] = AgentVisibility(fields["visibility"])
    fields["provider"] = AgentProvider(fields["provider"])
    return Agent(**fields)


def granted_used_claimed(record: Sequence[Any]) -> tuple[bool, int, uuid.UUID | None]:
    """The access facts and the claimed exchange in a record of EXCHANGE_FACTS (without its position)."""
    granted, used_today, claimed = record[len(_AGENT_COLUMNS) :]
    return bool(granted), int(used_today), claimed


# $1 conversation ids, $2 user ids, $3 agent ids, $4 user message ids and
# $5 their texts (NULL for a regeneration), $6 assistant message ids, $7 the
# messages the first new one becomes a sibling of (NULL: it follows the
# active leaf), $8 times, $9 UTC days, $10 daily quotas (NULL for none), $11
# idempotency scopes (chat_scope), $12 request ids ('' for none): arrays, one
# element per start, no two of the same conversation, nor with a quota of the
# same user, agent and day (a row is updated at most once by a statement);
# $13 the generation owner.
#
# Each start adds its user message (none for a regeneration: the answer is a
# new sibling of the answer sibling_of) and the assistant's placeholder
# answering it. The first new message is appended after the conversation's
# active leaf, or with sibling_of becomes that message's sibling (same
# parent); the answer becomes the active leaf. The conversations are locked
# in id order (as every change of a message_count is made), so concurrent
# exchanges of a conversation are serialised and their messages' seq follow
# that order. With a quota one message is counted against the day's usage
# row of user and agent, locked in (user, agent) order, and nothing of that
# start is written when it is used up. With a request id the answer's id is
# claimed for it: when a concurrent call claimed it first, the statement
# fails with a unique violation and writes nothing (db/batching.py then runs
# each start alone).
#
# One row per start, in order: whether the conversation is the caller's,
# whether sibling_of is still in it (true without), whether the quota counted
# the message (true without quota), the conversation's message_count and
# title before this exchange, the new user message's create_time and
# update_time (NULL when nothing was written or there is none), and the
# parent of the first new message.
START_EXCHANGES = (
    "WITH batch AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], "
    "$7::uuid[], $8::timestamptz[], $9::date[], $10::bigint[], $11::text[], $12::text[]) WITH ORDINALITY "
    "AS b (conversation_id, user_id, agent_id, user_mid, content, assistant_mid, sibling_of, at, day, quota, scope, "
    "request_id, position)), "
    # Each conversation by its primary key and each sibling by its own, as
    # CREATE_MESSAGES does: joins were planned, on a new database's near-empty
    # tables, as scans of them all.
    "owned AS (SELECT b.*, c.message_count, c.title, c.active_message_id "
    "FROM (SELECT * FROM batch ORDER BY conversation_id) AS b CROSS JOIN LATERAL ("
    "SELECT message_count, title, active_message_id FROM conversations "
    "WHERE id = b.conversation_id AND user_id = b.user_id FOR UPDATE) AS c), "
    "placed AS (SELECT o.*, p.parent FROM owned o CROSS JOIN LATERAL ("
    "SELECT o.active_message_id AS parent WHERE o.sibling_of IS NULL "
    "UNION ALL SELECT m.parent_id FROM messages m WHERE m.id = o.sibling_of AND m.conversation_id = o.conversation_id"
    ") AS p), "
    "counted AS ("
    + taking_quota_sql(
        "placed WHERE placed.quota IS NOT NULL ORDER BY placed.user_id, placed.agent_id",
        user_id="placed.user_id",
        agent_id="placed.agent_id",
        day="placed.day",
        quota="(SELECT q.quota FROM placed q "
        "WHERE q.user_id = u.user_id AND q.agent_id = u.agent_id AND q.day = u.day AND q.quota IS NOT NULL)",
    )
    + "), "
    "kept AS (SELECT * FROM placed WHERE placed.quota IS NULL OR EXISTS (SELECT FROM counted k "
    "WHERE k.user_id = placed.user_id AND k.agent_id = placed.agent_id AND k.day = placed.day)), "
    "created AS (INSERT INTO messages (id, conversation_id, role, content, state, failure_reason, "
    "prompt_tokens, completion_tokens, generation_owner, parent_id, create_time, update_time) "
    "SELECT m.id, kept.conversation_id, m.role, m.content, m.state, '', 0, 0, m.owner, m.parent, kept.at, kept.at "
    "FROM kept CROSS JOIN LATERAL (VALUES "
    "(kept.user_mid, 'user'::message_role, kept.content, 'complete'::message_state, NULL::bigint, kept.parent), "
    "(kept.assistant_mid, 'assistant'::message_role, '', 'streaming'::message_state, $13::bigint, "
    "coalesce(kept.user_mid, kept.parent))) AS m (id, role, content, state, owner, parent) "
    "WHERE m.id IS NOT NULL RETURNING id, create_time, update_time), "
    "bumped AS (UPDATE conversations SET "
    "message_count = conversations.message_count + CASE WHEN kept.user_mid IS NULL THEN 1 ELSE 2 END, "
    "last_message_time = kept.at, update_time = kept.at, active_message_id = kept.assistant_mid "
    "FROM kept WHERE conversations.id = kept.conversation_id), "
    "claimed AS ("
    + claiming_sql(
        "kept WHERE kept.request_id <> ''",
        user_id="kept.user_id",
        scope="kept.scope",
        request_id="kept.request_id",
        resource_id="kept.assistant_mid",
        conflict_fails=True,
    )
    + ") "
    "SELECT o.position IS NOT NULL, p.position IS NOT NULL, b.quota IS NULL OR k.position IS NOT NULL, "
    "o.message_count, o.title, created.create_time, created.update_time, p.parent "
    "FROM batch b LEFT JOIN owned o ON o.position = b.position LEFT JOIN placed p ON p.position = b.position "
    "LEFT JOIN kept k ON k.position = b.position LEFT JOIN created ON created.id = b.user_mid ORDER BY b.position"
)


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
