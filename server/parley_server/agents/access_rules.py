"""Who may use an agent now: the single decision every service applies.

CheckAgentAccess, the `accessible` flag of ListAgents/GetAgent,
ListAccessibleAgents, GetUsage's remaining quota, and the checks made before
creating a conversation or sending a message all go through `decide`, so they
can never disagree. The rule itself (`rule`) is a pure function of the
caller, the agent, whether a live grant exists and today's message count;
`decide_many` loads those facts for many agents in at most two queries, and
chat reads them along with the conversation (chat/sql.py).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.common.caller import Caller
from parley_server.common.errors import NotFound, Reason
from parley_server.db.models import Agent, AgentGrant, AgentVisibility, UsageDaily


class AccessReason(enum.Enum):
    OK = "ok"
    PREMIUM_REQUIRED = "premium_required"
    NOT_GRANTED = "not_granted"
    AGENT_DISABLED = "agent_disabled"
    QUOTA_EXCEEDED = "quota_exceeded"


@dataclass(frozen=True)
class AccessDecision:
    reason: AccessReason
    # Messages the caller may still send to the agent today; None = no quota applies.
    remaining_quota: int | None = None

    @property
    def allowed(self) -> bool:
        return self.reason is AccessReason.OK


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of moment: quotas and usage are counted per UTC day."""
    return moment.astimezone(UTC).date()


def start_of_utc_day(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def until_next_utc_day(now: datetime) -> timedelta:
    """How long until today's quotas reset."""
    return start_of_utc_day(utc_day(now) + timedelta(days=1)) - now


def daily_quota(caller: Caller, agent: Agent) -> int | None:
    """Messages per UTC day the caller may send to agent; None = unlimited."""
    if caller.is_admin or caller.premium:
        return None
    return agent.daily_message_quota


def _grant_matters(caller: Caller, agent: Agent) -> bool:
    """Whether a grant could change rule's answer for caller and agent."""
    if caller.is_admin or agent.visibility is AgentVisibility.PUBLIC:
        return False
    return not (agent.visibility is AgentVisibility.PREMIUM and caller.premium)


def rule(caller: Caller, agent: Agent, granted: bool, used_today: int) -> AccessDecision:
    """The decision from its facts: whether a live grant exists, and the messages sent today."""
    if agent.delete_time is not None or not agent.enabled:
        return AccessDecision(AccessReason.AGENT_DISABLED)
    if caller.is_admin:
        return AccessDecision(AccessReason.OK)
    if agent.visibility is AgentVisibility.PREMIUM and not (caller.premium or granted):
        return AccessDecision(AccessReason.PREMIUM_REQUIRED)
    if agent.visibility is AgentVisibility.RESTRICTED and not granted:
        return AccessDecision(AccessReason.NOT_GRANTED)
    quota = daily_quota(caller, agent)
    if quota is None:
        return AccessDecision(AccessReason.OK)
    if used_today >= quota:
        return AccessDecision(AccessReason.QUOTA_EXCEEDED, 0)
    return AccessDecision(AccessReason.OK, quota - used_today)


async def decide_many(db: AsyncSession, caller: Caller, agents: Sequence[Agent], now: datetime) -> list[AccessDecision]:
    """The caller's access to each of agents at now, in the same order.

    Grants and usage are only read for the agents whose rule depends on them
    (an admin, or a public agent without quota, needs neither): every chat
    message passes here, and most callers need no query at all.
    """
    grant_ids = [agent.id for agent in agents if _grant_matters(caller, agent)]
    usage_ids = [agent.id for agent in agents if daily_quota(caller, agent) is not None]
    granted: set[uuid.UUID] = set()
    if grant_ids:
        granted = set(
            await db.scalars(
                select(AgentGrant.agent_id).where(
                    AgentGrant.user_id == caller.user_id,
                    AgentGrant.agent_id.in_(grant_ids),
                    or_(AgentGrant.expire_time.is_(None), AgentGrant.expire_time > now),
                )
            )
        )
    used: dict[uuid.UUID, int] = {}
    if usage_ids:
        used = {
            row.agent_id: row.message_count
            for row in await db.execute(
                select(UsageDaily.agent_id, UsageDaily.message_count).where(
                    UsageDaily.user_id == caller.user_id,
                    UsageDaily.day == utc_day(now),
                    UsageDaily.agent_id.in_(usage_ids),
                )
            )
        }
    return [rule(caller, agent, agent.id in granted, used.get(agent.id, 0)) for agent in agents]


async def decide(db: AsyncSession, caller: Caller, agent: Agent, now: datetime) -> AccessDecision:
    """The caller's access to agent at now."""
    return (await decide_many(db, caller, [agent], now))[0]


async def live_agent(db: AsyncSession, agent_id: uuid.UUID, *, for_update: bool = False) -> Agent:
    """The agent with agent_id unless deleted; NOT_FOUND otherwise."""
    query = select(Agent).where(Agent.id == agent_id, Agent.delete_time.is_(None))
    if for_update:
        query = query.with_for_update()
    agent = (await db.execute(query)).scalar_one_or_none()
    if agent is None:
        raise NotFound("agent not found", reason=Reason.AGENT_NOT_FOUND)
    return agent
