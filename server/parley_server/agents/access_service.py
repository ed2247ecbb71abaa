"""AgentAccessService rules: who may use which agent, grants, quotas, usage.

The decision itself lives in access_rules.py; this service exposes it
(CheckAgentAccess, ListAccessibleAgents), enforces it for other services
(`require_access`, called inside their own transaction so the check and the
write they guard see the same data), manages grants, and keeps the daily usage
rollup that quotas and GetUsage read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.agents.access_rules import (
    AccessDecision,
    AccessReason,
    decide,
    decide_many,
    live_agent,
    start_of_utc_day,
    until_next_utc_day,
    utc_day,
)
from parley_server.agents.service import AgentView, agent_views
from parley_server.common.caller import Caller
from parley_server.common.clock import utcnow
from parley_server.common.errors import NotFound, PermissionDenied, Reason, ResourceExhausted
from parley_server.common.pagination import Page, Paginator, newest_first, time_id_keyset
from parley_server.common.validation import Violations, only_uuid
from parley_server.db.database import Database, rowcount
from parley_server.db.models import Agent, AgentGrant, UsageDaily, User

DENIALS = {
    AccessReason.PREMIUM_REQUIRED: "this agent needs a premium account or a grant",
    AccessReason.NOT_GRANTED: "this agent is available on request only, and you have no grant",
    AccessReason.AGENT_DISABLED: "this agent is disabled",
}


@dataclass(frozen=True)
class AgentUsage:
    """The caller's use of one agent over a period."""

    agent_id: uuid.UUID
    message_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Messages left today; None = no quota applies.
    remaining_daily_quota: int | None = None


def require_allowed(decision: AccessDecision, now: datetime) -> None:
    """Raise what `AgentAccessService.require_access` raises unless decision (made at now) allows.

    For a caller that read the facts of the decision itself (chat/sql.py,
    with access_rules.rule), in a statement of its own.
    """
    if decision.reason is AccessReason.QUOTA_EXCEEDED:
        raise quota_exceeded(now)
    if not decision.allowed:
        raise PermissionDenied(DENIALS[decision.reason], reason=Reason[decision.reason.name])


def quota_exceeded(now: datetime) -> ResourceExhausted:
    return ResourceExhausted(
        "today's message quota for this agent is used up",
        retry_after=until_next_utc_day(now),
        reason=Reason.QUOTA_EXCEEDED,
    )


class AgentAccessService:
    def __init__(self, database: Database, paginator: Paginator) -> None:
        self._db = database
        self._paginator = paginator

    # -- for other services ---------------------------------------------------

    async def require_access(self, db: AsyncSession, caller: Caller, agent_id: uuid.UUID) -> Agent:
        """The agent, if the caller may use it now.

        Raises NOT_FOUND (AGENT_NOT_FOUND) for a deleted or unknown agent,
        RESOURCE_EXHAUSTED (QUOTA_EXCEEDED, retry at the next UTC midnight)
        for a used-up daily quota, and PERMISSION_DENIED with the
        AccessReason name (PREMIUM_REQUIRED, NOT_GRANTED, AGENT_DISABLED:
        the proto enum's names without their ACCESS_REASON_ prefix)
        otherwise.
        """
        agent = await live_agent(db, agent_id)
        await self.require_access_to(db, caller, agent)
        return agent

    async def require_access_to(self, db: AsyncSession, caller: Caller, agent: Agent) -> None:
        """require_access for an agent already read (not deleted), to spare its read."""
        now = utcnow()
        require_allowed(await decide(db, caller, agent, now), now)

    # -- RPCs -------------------------------------------------------------------

    async def check_access(self, caller: Caller, agent_id: str) -> AccessDecision:
        parsed = only_uuid("agent_id", agent_id)
        async with self._db.transaction() as db:
            return await decide(db, caller, await live_agent(db, parsed), utcnow())

    async def list_accessible_agents(self, caller: Caller) -> list[AgentView]:
        """The agents the caller may use now, ordered by slug."""
        async with self._db.transaction() as db:
            views = await agent_views(db, caller, await _live_agents(db))
        return [view for view in views if view.accessible]

    async def usage(self, caller: Caller, start: datetime | None, end: datetime | None) -> list[AgentUsage]:
        """The caller's usage per agent over [start, end), ordered by agent id.

        Usage is kept per UTC day, so the period covers every day it touches
        (default: today). Agents used in the period and agents usable now are
        listed, the latter with today's remaining quota when one applies.
        """
        now = utcnow()
        start = start or start_of_utc_day(utc_day(now))
        end = end or now
        v = Violations()
        if end < start:
            v.add("end_time", "must not be before start_time")
        v.raise_if_any()
        end_day = utc_day(end)
        # A period ending at midnight does not touch the day that starts there.
        in_period = UsageDaily.day <= end_day if end > start_of_utc_day(end_day) else UsageDaily.day < end_day
        async with self._db.transaction() as db:
            sums = await db.execute(
                select(
                    UsageDaily.agent_id,
                    func.sum(UsageDaily.message_count).label("messages"),
                    func.sum(UsageDaily.prompt_tokens).label("prompt"),
                    func.sum(UsageDaily.completion_tokens).label("completion"),
                )
                .where(UsageDaily.user_id == caller.user_id, UsageDaily.day >= utc_day(start), in_period)
                .group_by(UsageDaily.agent_id)
            )
            usage = {
                row.agent_id: AgentUsage(row.agent_id, int(row.messages), int(row.prompt), int(row.completion))
                for row in sums
            }
            agents = await _live_agents(db)
            decisions = await decide_many(db, caller, agents, now)
        for agent, decision in zip(agents, decisions, strict=True):
            if decision.allowed or agent.id in usage:
                usage[agent.id] = replace(
                    usage.get(agent.id, AgentUsage(agent.id)), remaining_daily_quota=decision.remaining_quota
                )
        return [usage[agent_id] for agent_id in sorted(usage)]

    async def grant(self, caller: Caller, user_id: str, agent_id: str, expire_time: datetime | None) -> AgentGrant:
        """Grant user access to agent, or replace the expiry of the existing grant."""
        v = Violations()
        user = v.uuid("user_id", user_id)
        agent = v.uuid("agent_id", agent_id)
        if expire_time is not None and expire_time <= utcnow():
            v.add("expire_time", "must be in the future; leave it unset for a grant that never expires")
        v.raise_if_any()
        assert user is not None and agent is not None
        async with self._db.transaction() as db:
            if await db.get(User, user) is None:
                raise NotFound("user not found", reason=Reason.USER_NOT_FOUND)
            await live_agent(db, agent)
            stmt = insert(AgentGrant).values(
                id=uuid.uuid4(), user_id=user, agent_id=agent, expire_time=expire_time, granted_by=caller.user_id
            )
            upsert = stmt.on_conflict_do_update(
                index_elements=[AgentGrant.user_id, AgentGrant.agent_id],
                set_={"expire_time": stmt.excluded.expire_time, "granted_by": stmt.excluded.granted_by},
            ).returning(AgentGrant)
            result = await db.execute(upsert, execution_options={"populate_existing": True})
            return result.scalar_one()

    async def revoke(self, user_id: str, agent_id: str) -> None:
        v = Violations()
        user = v.uuid("user_id", user_id)
        agent = v.uuid("agent_id", agent_id)
        v.raise_if_any()
        async with self._db.transaction() as db:
            removed = await db.execute(
                delete(AgentGrant).where(AgentGrant.user_id == user, AgentGrant.agent_id == agent)
            )
            if not rowcount(removed):
                raise NotFound("this user has no grant for this agent", reason=Reason.GRANT_NOT_FOUND)

    async def list_grants(
        self, caller: Caller, user_id: str, agent_id: str, page_size: int, page_token: str
    ) -> Page[AgentGrant]:
        """Grants (expired ones included), newest first, optionally of one user and/or agent."""
        v = Violations()
        user = v.uuid("user_id", user_id) if user_id else None
        agent = v.uuid("agent_id", agent_id) if agent_id else None
        size = self._paginator.page_size(v, page_size)
        scope = f"ListAgentGrants:{caller.user_id}:{user}:{agent}"
        after = self._paginator.decode(v, page_token, scope, 2)
        v.raise_if_any()
        query = select(AgentGrant)
        if user is not None:
            query = query.where(AgentGrant.user_id == user)
        if agent is not None:
            query = query.where(AgentGrant.agent_id == agent)
        query = newest_first(query, AgentGrant.create_time, AgentGrant.id, after, size)
        async with self._db.transaction() as db:
            rows = list((await db.execute(query)).scalars())
        return self._paginator.page(rows, size, scope, lambda grant: time_id_keyset(grant.create_time, grant.id))


async def _live_agents(db: AsyncSession) -> list[Agent]:
    """Every agent not deleted, ordered by slug."""
    return list(await db.scalars(select(Agent).where(Agent.delete_time.is_(None)).order_by(Agent.slug)))
