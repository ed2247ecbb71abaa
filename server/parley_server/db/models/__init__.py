"""SQLAlchemy models: the tables PostgreSQL keeps for Parley, one module per area.

Foreign keys to users cascade on delete so that deleting an account removes
everything it owns in one statement, whichever code path deletes it.
"""

from parley_server.db.models.accounts import (
    ApiKey,
    EmailToken,
    Invite,
    OutboxEmail,
    RefreshToken,
    Role,
    Scope,
    Session,
    TokenPurpose,
    User,
    UserKind,
    UserState,
    WaitlistEntry,
)
from parley_server.db.models.admin import StatsDay, StatsDayAgent
from parley_server.db.models.agents import Agent, AgentGrant, AgentProvider, AgentVisibility, UsageDaily
from parley_server.db.models.base import Base
from parley_server.db.models.common import IdempotencyKey, RateLimitCounter
from parley_server.db.models.conversations import FINAL_STATES, Conversation, Message, MessageRole, MessageState
from parley_server.db.models.feedback import FeedbackReason, MessageFeedback, Rating
from parley_server.db.models.replicas import Replica

__all__ = [
    "Agent",
    "ApiKey",
    "AgentGrant",
    "AgentProvider",
    "AgentVisibility",
    "Base",
    "Conversation",
    "EmailToken",
    "FINAL_STATES",
    "FeedbackReason",
    "IdempotencyKey",
    "Invite",
    "MessageFeedback",
    "Message",
    "MessageRole",
    "MessageState",
    "OutboxEmail",
    "RateLimitCounter",
    "Rating",
    "RefreshToken",
    "Replica",
    "Role",
    "Scope",
    "Session",
    "StatsDay",
    "StatsDayAgent",
    "TokenPurpose",
    "UsageDaily",
    "User",
    "UserKind",
    "UserState",
    "WaitlistEntry",
]
