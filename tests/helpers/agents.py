"""Agents: the seeded ones, and ones made and changed through AgentService."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update

from parley.agent.v1 import agent_pb2
from parley_server.app import App
from parley_server.common.caller import Caller
from parley_server.db.models import Agent, User
from tests.helpers.accounts import Account
from tests.helpers.database import sql
from tests.helpers.stubs import Stubs


async def make_premium(stubs: Stubs, account: Account) -> None:
    """Flip the premium flag in the database, as billing would, and drop the cached caller."""
    user_id = uuid.UUID(account.user.id)
    async with stubs.app.database.transaction() as db:
        await db.execute(update(User).where(User.id == user_id).values(premium=True))
    stubs.app.sessions.forget_user(user_id)


async def caller_of(stubs: Stubs, account: Account) -> Caller:
    return await stubs.app.sessions.authenticate(account.tokens.access_token)


async def agent_row(stubs: Stubs, *, slug: str | None = None, agent_id: str | None = None) -> Agent:
    """The stored agent (deleted ones included) by slug (live one) or id."""
    query = select(Agent)
    if slug is not None:
        query = query.where(Agent.slug == slug, Agent.delete_time.is_(None))
    if agent_id is not None:
        query = query.where(Agent.id == uuid.UUID(agent_id))
    async with stubs.app.database.transaction() as db:
        return (await db.execute(query)).scalar_one()


async def agent_id(app: App, slug: str = "assistant") -> str:
    """The id of the live agent with slug."""
    rows = await sql(app, "SELECT id FROM agents WHERE slug = :slug AND delete_time IS NULL", slug=slug)
    return str(rows[0][0])


async def seeded_ids(stubs: Stubs) -> dict[str, str]:
    """slug -> id of the three default agents."""
    return {slug: str((await agent_row(stubs, slug=slug)).id) for slug in ("assistant", "writer", "code-reviewer")}


def echo_agent(slug: str = "helper", **fields: Any) -> agent_pb2.Agent:
    """A valid CreateAgent payload; fields override."""
    values: dict[str, Any] = {
        "slug": slug,
        "name": "Helper",
        "description": "Helps.",
        "visibility": agent_pb2.AGENT_VISIBILITY_PUBLIC,
        "enabled": True,
        "provider": agent_pb2.AGENT_PROVIDER_ECHO,
        "system_prompt": "Be brief.",
        "temperature": 0.7,
        "max_output_tokens": 256,
        **fields,
    }
    return agent_pb2.Agent(**values)


async def create_agent(stubs: Stubs, admin: Account, agent: agent_pb2.Agent, request_id: str = "") -> agent_pb2.Agent:
    response: agent_pb2.CreateAgentResponse = await stubs.agent.CreateAgent(
        agent_pb2.CreateAgentRequest(agent=agent, request_id=request_id), metadata=admin.md
    )
    return response.agent


async def create_model_agent(stubs: Stubs, base_url: str, slug: str = "remote") -> agent_pb2.Agent:
    """An agent on the OpenAI-compatible endpoint at base_url (a FakeOpenAI), created by an admin."""
    admin = await stubs.admin_account()
    agent = echo_agent(slug, provider=agent_pb2.AGENT_PROVIDER_OPENAI, model="fake-model", base_url=base_url)
    return await create_agent(stubs, admin, agent)


async def update_agent(stubs: Stubs, admin: Account, agent: agent_pb2.Agent, *paths: str) -> agent_pb2.Agent:
    response: agent_pb2.UpdateAgentResponse = await stubs.agent.UpdateAgent(
        agent_pb2.UpdateAgentRequest(agent=agent, update_mask={"paths": list(paths)}), metadata=admin.md
    )
    return response.agent
