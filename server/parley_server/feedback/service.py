"""Ratings of answers: set, changed, deleted by the conversation's owner; listed for admins.

One rating per answer, keyed by the message: setting it again replaces it, so
a retried SetMessageFeedback leaves the same state. Only finished assistant
messages can be rated: a STREAMING answer may still change, and a user's own
words are not an answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from parley_server.common.caller import Caller
from parley_server.common.errors import FailedPrecondition, Reason
from parley_server.common.pagination import Page, Paginator, newest_first, time_id_keyset
from parley_server.common.validation import Violations, only_uuid
from parley_server.conversations.ownership import owned_conversation, owned_message
from parley_server.db.database import Database
from parley_server.db.models import FeedbackReason, Message, MessageFeedback, MessageRole, MessageState, Rating

MAX_COMMENT_LENGTH = 2000


@dataclass(frozen=True)
class FeedbackFilter:
    """ListFeedback's filters; None or empty matches any."""

    agent_id: str = ""
    rating: Rating | None = None
    with_comment: bool = False


class FeedbackService:
    def __init__(self, database: Database, paginator: Paginator) -> None:
        self._db = database
        self._paginator = paginator

    async def set(
        self, caller: Caller, message_id: str, rating: Rating | None, reason: FeedbackReason | None, comment: str
    ) -> MessageFeedback:
        """Rate one of the caller's answers, replacing an earlier rating."""
        v = Violations()
        mid = v.uuid("feedback.message_id", message_id)
        if rating is None:
            v.add("feedback.rating", "must be RATING_THUMBS_UP or RATING_THUMBS_DOWN")
        comment = v.text("feedback.comment", comment, max_length=MAX_COMMENT_LENGTH)
        v.raise_if_any()
        assert mid is not None and rating is not None
        async with self._db.transaction() as db:
            message, conversation = await owned_message(db, mid, caller.user_id)
            if message.role is not MessageRole.ASSISTANT:
                raise FailedPrecondition("only answers (assistant messages) can be rated", reason=Reason.NOT_AN_ANSWER)
            if message.state is MessageState.STREAMING:
                raise FailedPrecondition(
                    "the answer is still being written; rate it once it has ended", reason=Reason.NOT_AN_ANSWER
                )
            values = {"rating": rating, "reason": reason, "comment": comment}
            stmt = (
                insert(MessageFeedback)
                .values(
                    message_id=mid,
                    conversation_id=conversation.id,
                    user_id=caller.user_id,
                    agent_id=conversation.agent_id,
                    **values,
                )
                .on_conflict_do_update(
                    index_elements=[MessageFeedback.message_id], set_={**values, "update_time": func.now()}
                )
                .returning(MessageFeedback)
            )
            stored = await db.scalar(stmt, execution_options={"populate_existing": True})
            assert stored is not None
            return stored

    async def delete(self, caller: Caller, message_id: str) -> None:
        """Delete the caller's rating of one of their messages; none is fine."""
        mid = only_uuid("message_id", message_id)
        async with self._db.transaction() as db:
            await owned_message(db, mid, caller.user_id)
            await db.execute(delete(MessageFeedback).where(MessageFeedback.message_id == mid))

    async def of_conversation(self, caller: Caller, conversation_id: str) -> list[MessageFeedback]:
        """Every rating of one of the caller's conversations, in message order."""
        cid = only_uuid("conversation_id", conversation_id)
        async with self._db.transaction() as db:
            await owned_conversation(db, cid, caller.user_id)
            # Few per conversation (one per answer at most): no pagination.
            rows = await db.scalars(
                select(MessageFeedback)
                .join(Message, Message.id == MessageFeedback.message_id)
                .where(MessageFeedback.conversation_id == cid)
                .order_by(Message.seq)
            )
            return list(rows)

    async def list_all(self, page_size: int, page_token: str, where: FeedbackFilter) -> Page[MessageFeedback]:
        """Everyone's ratings, most recently changed first (for administrators)."""
        v = Violations()
        size = Paginator.page_size(v, page_size)
        agent_id = v.uuid("agent_id", where.agent_id) if where.agent_id else None
        v.raise_if_any()
        rating = where.rating.value if where.rating else None
        scope = json.dumps(["ListFeedback", str(agent_id or ""), rating, where.with_comment])
        keyset = self._paginator.decode(v, page_token, scope, 2)
        v.raise_if_any()
        query = select(MessageFeedback)
        if agent_id is not None:
            query = query.where(MessageFeedback.agent_id == agent_id)
        if where.rating is not None:
            query = query.where(MessageFeedback.rating == where.rating)
        if where.with_comment:
            query = query.where(MessageFeedback.comment != "")
        query = newest_first(query, MessageFeedback.update_time, MessageFeedback.message_id, keyset, size)
        async with self._db.transaction() as db:
            rows = list((await db.scalars(query)).all())
        return self._paginator.page(rows, size, scope, lambda f: time_id_keyset(f.update_time, f.message_id))
