"""AgentService over real gRPC: catalogue, administration, validation, provider pooling."""

from __future__ import annotations

import asyncio
import uuid
from typing import TypedDict, cast

import grpc
import pytest
from sqlalchemy import func, select, update

from parley.agent.v1 import agent_pb2
from parley_server.agents.providers.base import ChatTurn, GeneratedText, ProviderError
from parley_server.agents.providers.echo_provider import EchoProvider
from parley_server.agents.providers.openai_provider import OpenAIProvider
from parley_server.agents.registry import PooledProvider
from parley_server.db.models import Agent, Conversation
from tests.helpers.agents import agent_row, create_agent, echo_agent, seeded_ids, update_agent
from tests.helpers.database import snapshot
from tests.helpers.errors import expect_error
from tests.helpers.fake_openai import FakeOpenAI
from tests.helpers.stubs import Stubs

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def list_all(stubs: Stubs, md: object, page_size: int = 0) -> list[agent_pb2.Agent]:
    agents: list[agent_pb2.Agent] = []
    token = ""
    while True:
        page = await stubs.agent.ListAgents(
            agent_pb2.ListAgentsRequest(page_size=page_size, page_token=token), metadata=md
        )
        agents.extend(page.agents)
        token = page.next_page_token
        if not token:
            return agents


# -- reading the catalogue ------------------------------------------------------


async def test_users_see_the_catalogue_without_configuration(stubs: Stubs) -> None:
    user = await stubs.active_account()
    agents = await list_all(stubs, user.md)
    assert [(a.slug, a.accessible) for a in agents] == [
        ("assistant", True),
        ("code-reviewer", False),
        ("writer", False),
    ]
    assert all(a.system_prompt == a.base_url == a.api_key_env == "" for a in agents)
    assistant = agents[0]
    assert assistant.visibility == agent_pb2.AGENT_VISIBILITY_PUBLIC
    assert assistant.provider == agent_pb2.AGENT_PROVIDER_ECHO
    assert assistant.enabled and assistant.title_generation and assistant.model == "echo"
    assert not assistant.HasField("daily_message_quota")
    got = await stubs.agent.GetAgent(agent_pb2.GetAgentRequest(id=assistant.id), metadata=user.md)
    assert got.agent == assistant


async def test_admins_see_the_configuration_and_may_use_everything(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    agents = await list_all(stubs, admin.md)
    assert all(a.accessible for a in agents)
    assert agents[0].system_prompt == "You are a helpful, concise assistant."
    got = await stubs.agent.GetAgent(agent_pb2.GetAgentRequest(id=agents[2].id), metadata=admin.md)
    assert got.agent.system_prompt.startswith("You are a writing coach")


async def test_list_pages_are_keyset_stable(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    first = await stubs.agent.ListAgents(agent_pb2.ListAgentsRequest(page_size=2), metadata=admin.md)
    assert [a.slug for a in first.agents] == ["assistant", "code-reviewer"]
    # Rows inserted before and after the cursor: the next page neither repeats nor skips.
    await create_agent(stubs, admin, echo_agent("aaa-first"))
    await create_agent(stubs, admin, echo_agent("zed"))
    second = await stubs.agent.ListAgents(
        agent_pb2.ListAgentsRequest(page_size=2, page_token=first.next_page_token), metadata=admin.md
    )
    assert [a.slug for a in second.agents] == ["writer", "zed"]
    assert second.next_page_token == ""
    huge = await stubs.agent.ListAgents(agent_pb2.ListAgentsRequest(page_size=10_000), metadata=admin.md)
    assert len(huge.agents) == 5 and huge.next_page_token == ""


async def test_bad_list_and_get_requests(stubs: Stubs) -> None:
    user = await stubs.active_account()
    other = await stubs.active_account("bob@example.com")
    page = await stubs.agent.ListAgents(agent_pb2.ListAgentsRequest(page_size=1), metadata=user.md)
    bad = await expect_error(
        stubs.agent.ListAgents(agent_pb2.ListAgentsRequest(page_size=-1), metadata=user.md), INVALID
    )
    assert "page_size" in bad.violations
    tampered = page.next_page_token[:-3] + ("AAA" if not page.next_page_token.endswith("AAA") else "BBB")
    for token in (tampered, "not a token", page.next_page_token + "x"):
        bad = await expect_error(
            stubs.agent.ListAgents(agent_pb2.ListAgentsRequest(page_token=token), metadata=user.md), INVALID
        )
        assert "page_token" in bad.violations
    # Another user's token is not valid for this caller.
    await expect_error(
        stubs.agent.ListAgents(agent_pb2.ListAgentsRequest(page_token=page.next_page_token), metadata=other.md),
        INVALID,
    )
    bad = await expect_error(stubs.agent.GetAgent(agent_pb2.GetAgentRequest(id="nope"), metadata=user.md), INVALID)
    assert bad.violations == {"id": "must be a UUID"}
    await expect_error(stubs.agent.GetAgent(agent_pb2.GetAgentRequest(), metadata=user.md), INVALID)
    await expect_error(
        stubs.agent.GetAgent(agent_pb2.GetAgentRequest(id=str(uuid.uuid4())), metadata=user.md),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )


async def test_catalogue_needs_an_active_account(stubs: Stubs) -> None:
    await expect_error(stubs.agent.ListAgents(agent_pb2.ListAgentsRequest()), grpc.StatusCode.UNAUTHENTICATED)


# -- administration -------------------------------------------------------------


async def test_create_agent_with_every_field(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    created = await create_agent(
        stubs,
        admin,
        echo_agent(
            "local-llama",
            name="  Local Llama ",
            description="Runs\r\non the box.",
            visibility=agent_pb2.AGENT_VISIBILITY_PREMIUM,
            provider=agent_pb2.AGENT_PROVIDER_OPENAI,
            model="llama3.2",
            base_url="http://localhost:11434/v1",
            api_key_env="OLLAMA_KEY",
            system_prompt="Answer in French.",
            temperature=1.25,
            max_output_tokens=32768,
            title_generation=True,
            daily_message_quota=0,
        ),
    )
    uuid.UUID(created.id)
    assert created.name == "Local Llama" and created.description == "Runs\non the box."
    assert created.model == "llama3.2" and created.api_key_env == "OLLAMA_KEY"
    assert created.base_url == "http://localhost:11434/v1"
    assert created.daily_message_quota == 0 and created.title_generation and created.accessible
    assert created.create_time.seconds > 0 and created.update_time.seconds > 0
    row = await agent_row(stubs, agent_id=created.id)
    # float32 on the wire, the decimal the admin typed in the database.
    assert row.temperature == 1.25 and row.version == 1
    seven = await create_agent(stubs, admin, echo_agent("seven", temperature=0.7))
    assert (await agent_row(stubs, agent_id=seven.id)).temperature == 0.7
    user = await stubs.active_account()
    seen = await stubs.agent.GetAgent(agent_pb2.GetAgentRequest(id=created.id), metadata=user.md)
    assert seen.agent.base_url == seen.agent.api_key_env == seen.agent.system_prompt == ""
    assert seen.agent.model == "llama3.2" and not seen.agent.accessible


async def test_openai_agent_may_leave_base_url_empty_for_openai_itself(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    created = await create_agent(
        stubs, admin, echo_agent("gpt", provider=agent_pb2.AGENT_PROVIDER_OPENAI, model="gpt-4o-mini")
    )
    assert created.base_url == ""


async def test_create_is_idempotent_per_request_id(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    request_id = str(uuid.uuid4())
    first, second = await asyncio.gather(
        create_agent(stubs, admin, echo_agent("twice"), request_id),
        create_agent(stubs, admin, echo_agent("twice"), request_id),
    )
    third = await create_agent(stubs, admin, echo_agent("twice"), request_id)
    assert first.id == second.id == third.id
    async with stubs.app.database.transaction() as db:
        assert await db.scalar(select(func.count()).select_from(Agent).where(Agent.slug == "twice")) == 1
    await expect_error(
        stubs.agent.CreateAgent(
            agent_pb2.CreateAgentRequest(agent=echo_agent("twice"), request_id=str(uuid.uuid4())), metadata=admin.md
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "SLUG_TAKEN",
    )


class AgentFields(TypedDict, total=False):
    """The Agent fields a case sets, as keyword arguments."""

    slug: str
    name: str
    description: str
    visibility: agent_pb2.AgentVisibility
    provider: agent_pb2.AgentProvider
    system_prompt: str
    model: str
    temperature: float
    max_output_tokens: int
    daily_message_quota: int
    base_url: str
    api_key_env: str


# Numbers no member of the enum has: the stubs type an enum field as its
# members, which these cases send anyway, for the server to refuse.
NO_VISIBILITY = cast(agent_pb2.AgentVisibility, 99)
NO_PROVIDER = cast(agent_pb2.AgentProvider, 7)

CREATE_CASES: list[tuple[AgentFields, str]] = [
    ({"visibility": agent_pb2.AGENT_VISIBILITY_UNSPECIFIED}, "agent.visibility"),
    ({"visibility": NO_VISIBILITY}, "agent.visibility"),
    ({"provider": agent_pb2.AGENT_PROVIDER_UNSPECIFIED}, "agent.provider"),
    ({"provider": NO_PROVIDER}, "agent.provider"),
    ({"slug": ""}, "agent.slug"),
    ({"slug": "Has-Capitals"}, "agent.slug"),
    ({"slug": "-leading-dash"}, "agent.slug"),
    ({"slug": "a" * 65}, "agent.slug"),
    ({"name": ""}, "agent.name"),
    ({"name": "x" * 101}, "agent.name"),
    ({"name": "bell\x07"}, "agent.name"),
    ({"description": "d" * 2001}, "agent.description"),
    ({"system_prompt": "p" * 1_000_000}, "agent.system_prompt"),
    ({"model": "m" * 201}, "agent.model"),
    ({"temperature": 2.5}, "agent.temperature"),
    ({"temperature": -0.1}, "agent.temperature"),
    ({"temperature": float("nan")}, "agent.temperature"),
    ({"max_output_tokens": -1}, "agent.max_output_tokens"),
    ({"max_output_tokens": 32769}, "agent.max_output_tokens"),
    ({"daily_message_quota": -1}, "agent.daily_message_quota"),
    ({"provider": agent_pb2.AGENT_PROVIDER_OPENAI}, "agent.model"),
    ({"base_url": "ftp://example.com"}, "agent.base_url"),
    ({"base_url": "not a url"}, "agent.base_url"),
    ({"base_url": "http://user:pw@example.com/v1"}, "agent.base_url"),
    ({"base_url": "http://[::1/v1"}, "agent.base_url"),
    ({"api_key_env": "lower_case"}, "agent.api_key_env"),
    ({"api_key_env": "1STARTS_WITH_DIGIT"}, "agent.api_key_env"),
    ({"api_key_env": "K" * 101}, "agent.api_key_env"),
]


@pytest.mark.parametrize(("fields", "field"), CREATE_CASES)
async def test_create_rejects_bad_fields_and_changes_nothing(stubs: Stubs, fields: AgentFields, field: str) -> None:
    admin = await stubs.admin_account()
    before = await snapshot(stubs.app)
    bad = await expect_error(
        stubs.agent.CreateAgent(
            agent_pb2.CreateAgentRequest(agent=echo_agent(**fields), request_id=str(uuid.uuid4())),
            metadata=admin.md,
        ),
        INVALID,
    )
    assert field in bad.violations, bad.violations
    assert await snapshot(stubs.app) == before


async def test_create_reports_every_bad_field_at_once(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    bad = await expect_error(
        stubs.agent.CreateAgent(
            agent_pb2.CreateAgentRequest(agent=agent_pb2.Agent(), request_id="r" * 101), metadata=admin.md
        ),
        INVALID,
    )
    assert set(bad.violations) == {"agent.slug", "agent.name", "agent.visibility", "agent.provider", "request_id"}


async def test_update_agent_bumps_version_and_changes_only_masked_fields(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    created = await create_agent(stubs, admin, echo_agent("editable", daily_message_quota=5))
    updated = await update_agent(
        stubs,
        admin,
        agent_pb2.Agent(id=created.id, name="Renamed", description="ignored: not in the mask", enabled=False),
        "name",
        "enabled",
        "daily_message_quota",
    )
    assert (updated.name, updated.enabled, updated.description) == ("Renamed", False, "Helps.")
    assert not updated.HasField("daily_message_quota")  # unset in the request = no quota
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()
    row = await agent_row(stubs, agent_id=created.id)
    assert row.version == 2 and row.system_prompt == "Be brief."
    switched = await update_agent(
        stubs,
        admin,
        agent_pb2.Agent(id=created.id, provider=agent_pb2.AGENT_PROVIDER_OPENAI, model="qwen", slug="renamed"),
        "provider",
        "model",
        "slug",
    )
    assert (switched.provider, switched.model, switched.slug) == (agent_pb2.AGENT_PROVIDER_OPENAI, "qwen", "renamed")
    assert (await agent_row(stubs, agent_id=created.id)).version == 3


UPDATE_CASES: list[tuple[dict[str, list[str]], AgentFields, str]] = [
    ({"paths": []}, {}, "update_mask"),
    ({"paths": ["id"]}, {}, "update_mask.paths"),
    ({"paths": ["version"]}, {}, "update_mask.paths"),
    ({"paths": ["accessible"]}, {}, "update_mask.paths"),
    ({"paths": ["agent.name"]}, {}, "update_mask.paths"),
    ({"paths": ["visibility"]}, {"visibility": agent_pb2.AGENT_VISIBILITY_UNSPECIFIED}, "agent.visibility"),
    ({"paths": ["name"]}, {"name": "n" * 500}, "agent.name"),
    ({"paths": ["slug"]}, {"slug": "UPPER"}, "agent.slug"),
    ({"paths": ["temperature"]}, {"temperature": 9.0}, "agent.temperature"),
    # OPENAI without a model breaks a rule spanning fields.
    ({"paths": ["provider", "model"]}, {"provider": agent_pb2.AGENT_PROVIDER_OPENAI}, "agent.model"),
]


@pytest.mark.parametrize(("mask", "fields", "field"), UPDATE_CASES)
async def test_update_rejects_bad_input_and_changes_nothing(
    stubs: Stubs, mask: dict[str, list[str]], fields: AgentFields, field: str
) -> None:
    admin = await stubs.admin_account()
    agent_id = (await seeded_ids(stubs))["assistant"]
    before = await snapshot(stubs.app)
    bad = await expect_error(
        stubs.agent.UpdateAgent(
            agent_pb2.UpdateAgentRequest(agent=agent_pb2.Agent(id=agent_id, **fields), update_mask=mask),
            metadata=admin.md,
        ),
        INVALID,
    )
    assert field in bad.violations, bad.violations
    assert await snapshot(stubs.app) == before


async def test_update_unknown_malformed_and_conflicting(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    bad = await expect_error(
        stubs.agent.UpdateAgent(
            agent_pb2.UpdateAgentRequest(agent=agent_pb2.Agent(id="x"), update_mask={"paths": ["name"]}),
            metadata=admin.md,
        ),
        INVALID,
    )
    assert "agent.id" in bad.violations
    await expect_error(
        update_agent(stubs, admin, agent_pb2.Agent(id=str(uuid.uuid4()), name="n"), "name"),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )
    ids = await seeded_ids(stubs)
    before = await snapshot(stubs.app)
    await expect_error(
        update_agent(stubs, admin, agent_pb2.Agent(id=ids["writer"], slug="assistant"), "slug"),
        grpc.StatusCode.ALREADY_EXISTS,
        "SLUG_TAKEN",
    )
    assert await snapshot(stubs.app) == before


async def test_delete_is_soft_and_frees_the_slug(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    user = await stubs.active_account()
    created = await create_agent(stubs, admin, echo_agent("short-lived"))
    async with stubs.app.database.transaction() as db:
        conversation_id = uuid.uuid4()
        db.add(Conversation(id=conversation_id, user_id=uuid.UUID(user.user.id), agent_id=uuid.UUID(created.id)))
    await stubs.agent.DeleteAgent(agent_pb2.DeleteAgentRequest(id=created.id), metadata=admin.md)
    row = await agent_row(stubs, agent_id=created.id)
    assert row.delete_time is not None
    async with stubs.app.database.transaction() as db:
        conversation = await db.get(Conversation, conversation_id)
        assert conversation is not None and str(conversation.agent_id) == created.id
    assert "short-lived" not in [a.slug for a in await list_all(stubs, user.md)]
    for md in (user.md, admin.md):
        await expect_error(
            stubs.agent.GetAgent(agent_pb2.GetAgentRequest(id=created.id), metadata=md),
            grpc.StatusCode.NOT_FOUND,
            "AGENT_NOT_FOUND",
        )
    await expect_error(
        stubs.agent.DeleteAgent(agent_pb2.DeleteAgentRequest(id=created.id), metadata=admin.md),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        update_agent(stubs, admin, agent_pb2.Agent(id=created.id, name="x"), "name"), grpc.StatusCode.NOT_FOUND
    )
    again = await create_agent(stubs, admin, echo_agent("short-lived"))
    assert again.id != created.id
    bad = await expect_error(stubs.agent.DeleteAgent(agent_pb2.DeleteAgentRequest(id="1"), metadata=admin.md), INVALID)
    assert "id" in bad.violations


async def test_management_is_for_admins_only(stubs: Stubs) -> None:
    user = await stubs.active_account()
    agent_id = (await seeded_ids(stubs))["assistant"]
    before = await snapshot(stubs.app)
    denied = grpc.StatusCode.PERMISSION_DENIED
    await expect_error(create_agent(stubs, user, echo_agent()), denied)
    await expect_error(update_agent(stubs, user, agent_pb2.Agent(id=agent_id, name="Mine"), "name"), denied)
    await expect_error(stubs.agent.DeleteAgent(agent_pb2.DeleteAgentRequest(id=agent_id), metadata=user.md), denied)
    assert await snapshot(stubs.app) == before


# -- pooled provider clients ------------------------------------------------------


def is_closed(provider: PooledProvider) -> bool:
    """provider.closed, read through a call: mypy keeps what an `assert not
    provider.closed` narrowed the property to across the awaits that close it."""
    return provider.closed


async def test_registry_reuses_a_client_until_the_agent_changes(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    registry = stubs.app.registry
    created = await create_agent(stubs, admin, echo_agent("pooled"))
    row = await agent_row(stubs, agent_id=created.id)
    first = await registry.provider_for(row)
    assert await registry.provider_for(row) is first
    assert isinstance(first, PooledProvider) and isinstance(first._inner, EchoProvider)

    await update_agent(stubs, admin, agent_pb2.Agent(id=created.id, name="Pooled 2"), "name")
    assert first.closed
    updated_row = await agent_row(stubs, agent_id=created.id)
    second = await registry.provider_for(updated_row)
    assert second is not first and not is_closed(second)
    # A row read before the update gets the newer client, not a rebuilt old one.
    assert await registry.provider_for(row) is second

    # Another replica updated the agent: the version in the row alone triggers the rebuild.
    async with stubs.app.database.transaction() as db:
        await db.execute(update(Agent).where(Agent.id == row.id).values(version=Agent.version + 1))
    third = await registry.provider_for(await agent_row(stubs, agent_id=created.id))
    assert third is not second and second.closed

    await stubs.agent.DeleteAgent(agent_pb2.DeleteAgentRequest(id=created.id), metadata=admin.md)
    assert third.closed


async def test_a_retired_client_finishes_streams_in_flight(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    registry = stubs.app.registry
    created = await create_agent(stubs, admin, echo_agent("busy"))
    provider = await registry.provider_for(await agent_row(stubs, agent_id=created.id))
    stream = provider.stream([ChatTurn("user", "one two three")], max_output_tokens=0, temperature=0)
    assert await anext(stream) == GeneratedText("Echo: ")
    await registry.forget(uuid.UUID(created.id))
    assert not is_closed(provider)
    assert [e async for e in stream][:3] == [GeneratedText("one "), GeneratedText("two "), GeneratedText("three")]
    assert provider.closed
    with pytest.raises(ProviderError):
        await anext(provider.stream([ChatTurn("user", "late")], max_output_tokens=0, temperature=0))


async def test_openai_agent_client_reads_its_key_from_the_environment(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_TEST_MODEL_KEY", "sk-from-env")
    admin = await stubs.admin_account()
    async with FakeOpenAI(words=["pong"]) as fake:
        created = await create_agent(
            stubs,
            admin,
            echo_agent(
                "remote",
                provider=agent_pb2.AGENT_PROVIDER_OPENAI,
                model="fake-model",
                base_url=fake.base_url,
                api_key_env="PARLEY_TEST_MODEL_KEY",
            ),
        )
        provider = await stubs.app.registry.provider_for(await agent_row(stubs, agent_id=created.id))
        assert isinstance(provider._inner, OpenAIProvider)
        events = [e async for e in provider.stream([ChatTurn("user", "ping")], max_output_tokens=8, temperature=0.7)]
        assert events[0] == GeneratedText("pong")
        assert fake.requests[0].headers["authorization"] == "Bearer sk-from-env"
        assert fake.requests[0].body["temperature"] == pytest.approx(0.7)
        await stubs.app.registry.forget(uuid.UUID(created.id))
        assert provider.closed
