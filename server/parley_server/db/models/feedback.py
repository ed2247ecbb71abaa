"""Ratings of answers: one row per rated assistant message."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from parley_server.db.models.base import Base, now_column, pg_enum


class Rating(enum.Enum):
    THUMBS_UP = "thumbs_up"
    THUMBS_DOWN = "thumbs_down"


class FeedbackReason(enum.Enum):
    INACCURATE = "inaccurate"
    UNHELPFUL = "unhelpful"
    INCOMPLETE = "incomplete"
    HARMFUL = "harmful"
    IGNORED_INSTRUCTIONS = "ignored_instructions"
    OTHER = "other"


class MessageFeedback(Base):
    """The owner's rating of an assistant message. It goes with the message
    (cascade), so clearing or deleting a conversation removes its ratings.
    agent_id is the conversation's, copied so statistics and the admin list
    filter by agent without joining messages and conversations."""

    __tablename__ = "message_feedback"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"))
    rating: Mapped[Rating] = mapped_column(pg_enum(Rating, "feedback_rating"))
    reason: Mapped[FeedbackReason | None] = mapped_column(pg_enum(FeedbackReason, "feedback_reason"), default=None)
    comment: Mapped[str] = mapped_column(String(2000), default="")
    create_time: Mapped[datetime] = now_column()
    update_time: Mapped[datetime] = now_column()

    __table_args__ = (
        # A conversation's ratings (ListConversationFeedback).
        Index("ix_message_feedback_conversation_id", "conversation_id"),
        # Everyone's, most recently changed first (ListFeedback; GetStats by day).
        Index("ix_message_feedback_update_time_message_id", "update_time", "message_id"),
    )
