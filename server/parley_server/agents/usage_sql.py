"""The daily usage rollup's writes as SQL, for statements that chain them with others.

Chat chains both into the single statements that start and end an exchange
(chat/sql.py), so a message, its quota and its usage are written together,
in one round trip and atomically. The arguments are SQL expressions (typed
bind parameters such as "$2::uuid", or ":user_id" in a SQLAlchemy text).
"""

from __future__ import annotations


def adding_usage_sql(
    source: str, *, user_id: str, agent_id: str, day: str, messages: str, prompt_tokens: str, completion_tokens: str
) -> str:
    """An INSERT adding messages and tokens to the day's usage row of user and agent, once per row of `source`.

    An upsert: concurrent writers of one row add up. Run it in a statement
    that commits on its own: the row is shared by every generation of the
    user and agent, and must not stay locked for the length of a transaction.
    """
    return (
        "INSERT INTO usage_daily AS u (user_id, agent_id, day, message_count, prompt_tokens, completion_tokens) "
        f"SELECT {user_id}, {agent_id}, {day}, {messages}, {prompt_tokens}, {completion_tokens} FROM {source} "
        "ON CONFLICT (user_id, agent_id, day) DO UPDATE "
        "SET message_count = u.message_count + excluded.message_count, "
        "prompt_tokens = u.prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = u.completion_tokens + excluded.completion_tokens"
    )


def taking_quota_sql(source: str, *, user_id: str, agent_id: str, day: str, quota: str) -> str:
    """An INSERT counting one message against the day's quota, once per row of `source`.

    The check and the increment are one statement, so concurrent sends (in
    any conversation, on any replica) cannot together pass the limit. It
    returns the row's user_id, agent_id and day when the message was
    counted, and no row when the quota was used up. quota may be per row: a
    subquery on the row `u` (in a statement of many users' messages).
    """
    return (
        "INSERT INTO usage_daily AS u (user_id, agent_id, day, message_count, prompt_tokens, completion_tokens) "
        f"SELECT {user_id}, {agent_id}, {day}, 1, 0, 0 FROM {source} "
        "ON CONFLICT (user_id, agent_id, day) DO UPDATE SET message_count = u.message_count + 1 "
        f"WHERE u.message_count < {quota} RETURNING user_id, agent_id, day"
    )
