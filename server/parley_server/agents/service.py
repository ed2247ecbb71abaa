"""AgentService rules: the agent catalogue and its administration.

Deleting is soft (delete_time): conversations keep pointing at the agent and
its usage history stays, while the slug is freed for a new agent. Every
update bumps the agent's version so the pooled provider client is rebuilt,
here and on other replicas (see agents/registry.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.agents.access_rules import decide_many, live_agent
from parley_server.agents.fields import (
    UPDATABLE_PATHS,
    AgentFields,
    checked_fields,
    stored_fields,
    with_paths,
)
from parley_server.agents.registry import AgentRegistry
from parley_server.common.caller import Caller
from parley_server.common.clock import utcnow
from parley_server.common.errors import AlreadyExists, Reason
from parley_server.common.idempotency import claim
from parley_server.common.pagination import Page, Paginator
from parley_server.common.validation import Violations, only_uuid
from parley_server.db.database import Database
from parley_server.db.models import Agent

CREATE_SCOPE = "agent.create"


@dataclass(frozen=True)
class AgentView:
    """An agent as one caller sees it."""

    agent: Agent
    # Whether the caller may use it now (access_rules.decide).
    accessible: bool
    # Only admins see how it is wired: system prompt, endpoint, key variable.
    show_config: bool


async def agent_views(db: AsyncSession, caller: Caller, agents: Sequence[Agent]) -> list[AgentView]:
    """agents as caller sees them, in the same order."""
    decisions = await decide_many(db, caller, agents, utcnow())
    return [
        AgentView(agent, decision.allowed, caller.is_admin) for agent, decision in zip(agents, decisions, strict=True)
    ]


def _slug_taken() -> AlreadyExists:
    return AlreadyExists("an agent with this slug already exists", reason=Reason.SLUG_TAKEN)


class AgentService:
    def __init__(self, database: Database, paginator: Paginator, registry: AgentRegistry) -> None:
        self._db = database
        self._paginator = paginator
        self._registry = registry

    async def list_agents(self, caller: Caller, page_size: int, page_token: str) -> Page[AgentView]:
        """Every agent not deleted, ordered by slug."""
        v = Violations()
        size = self._paginator.page_size(v, page_size)
        scope = f"ListAgents:{caller.user_id}"
        after = self._paginator.decode(v, page_token, scope, 2)
        v.raise_if_any()
        query = select(Agent).where(Agent.delete_time.is_(None)).order_by(Agent.slug, Agent.id).limit(size + 1)
        if after is not None:
            query = query.where(tuple_(Agent.slug, Agent.id) > (after[0], uuid.UUID(after[1])))
        async with self._db.transaction() as db:
            rows = list((await db.execute(query)).scalars())
            page = self._paginator.page(rows, size, scope, lambda agent: (agent.slug, str(agent.id)))
            return Page(await agent_views(db, caller, page.items), page.next_page_token)

    async def get_agent(self, caller: Caller, agent_id: str) -> AgentView:
        parsed = only_uuid("id", agent_id)
        async with self._db.transaction() as db:
            agent = await live_agent(db, parsed)
            return (await agent_views(db, caller, [agent]))[0]

    async def create_agent(self, caller: Caller, fields: AgentFields, request_id: str) -> AgentView:
        """Create an agent; a retried request_id returns the first one."""
        v = Violations()
        clean = checked_fields(v, fields)
        request_id = v.request_id("request_id", request_id)
        v.raise_if_any()
        try:
            async with self._db.transaction() as db:
                agent_id, create = await claim(db, caller.user_id, CREATE_SCOPE, request_id)
                if create:
                    await self._check_slug_free(db, clean.slug)
                    agent = Agent(id=agent_id, version=1, **clean.values())
                    db.add(agent)
                    await db.flush()
                    await db.refresh(agent)  # load the database-side timestamps
                else:
                    agent = await live_agent(db, agent_id)
                return (await agent_views(db, caller, [agent]))[0]
        except IntegrityError as exc:  # a concurrent create took the slug first
            raise _slug_taken() from exc

    async def update_agent(self, caller: Caller, agent_id: str, fields: AgentFields, paths: list[str]) -> AgentView:
        """Apply the fields named in paths; the provider client is rebuilt."""
        v = Violations()
        parsed = v.uuid("agent.id", agent_id)
        paths = v.update_mask(paths, set(UPDATABLE_PATHS))
        v.raise_if_any()
        assert parsed is not None
        try:
            async with self._db.transaction() as db:
                agent = await live_agent(db, parsed, for_update=True)
                clean = checked_fields(v, with_paths(stored_fields(agent), fields, paths))
                v.raise_if_any()
                if clean.slug != agent.slug:
                    await self._check_slug_free(db, clean.slug)
                for path in paths:
                    setattr(agent, path, getattr(clean, path))
                agent.version += 1
                agent.update_time = utcnow()
                view = (await agent_views(db, caller, [agent]))[0]
        except IntegrityError as exc:
            raise _slug_taken() from exc
        await self._registry.forget(agent.id)
        return view

    async def delete_agent(self, agent_id: str) -> None:
        """Soft-delete: nobody can use it any more, its history stays."""
        parsed = only_uuid("id", agent_id)
        async with self._db.transaction() as db:
            agent = await live_agent(db, parsed, for_update=True)
            agent.delete_time = agent.update_time = utcnow()
        await self._registry.forget(agent.id)

    async def _check_slug_free(self, db: AsyncSession, slug: str) -> None:
        taken = await db.scalar(select(Agent.id).where(Agent.slug == slug, Agent.delete_time.is_(None)))
        if taken is not None:
            raise _slug_taken()
