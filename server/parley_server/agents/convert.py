"""Conversions between agent/access domain values and their protobuf messages.

Shared by the AgentService and AgentAccessService handlers (both return
`parley.agent.v1.Agent`). An agent's visibility and provider are always
required: UNSPECIFIED and numbers from a newer client both become None, which
the domain reports with the request's other bad fields (and only when the
update mask names the field).
"""

from __future__ import annotations

import struct
from typing import cast

from parley.agent.v1 import agent_pb2
from parley.agent_access.v1 import agent_access_pb2
from parley_server.agents.access_rules import AccessDecision, AccessReason
from parley_server.agents.access_service import AgentUsage
from parley_server.agents.fields import AgentFields
from parley_server.agents.service import AgentView
from parley_server.common.convert import enum_from_proto, timestamp
from parley_server.db.models import AgentGrant, AgentProvider, AgentVisibility

VISIBILITY_TO_PROTO = {
    AgentVisibility.PUBLIC: agent_pb2.AGENT_VISIBILITY_PUBLIC,
    AgentVisibility.PREMIUM: agent_pb2.AGENT_VISIBILITY_PREMIUM,
    AgentVisibility.RESTRICTED: agent_pb2.AGENT_VISIBILITY_RESTRICTED,
}
VISIBILITY_FROM_PROTO = {v: k for k, v in VISIBILITY_TO_PROTO.items()}
PROVIDER_TO_PROTO = {
    AgentProvider.ECHO: agent_pb2.AGENT_PROVIDER_ECHO,
    AgentProvider.OPENAI: agent_pb2.AGENT_PROVIDER_OPENAI,
}
PROVIDER_FROM_PROTO = {v: k for k, v in PROVIDER_TO_PROTO.items()}
# protoc's .pyi types EnumTypeWrapper.Value() as a plain int; these are AccessReason numbers.
REASON_TO_PROTO = {
    reason: cast(agent_access_pb2.AccessReason, agent_access_pb2.AccessReason.Value(f"ACCESS_REASON_{reason.name}"))
    for reason in AccessReason
}


def agent_to_proto(view: AgentView) -> agent_pb2.Agent:
    agent = view.agent
    message = agent_pb2.Agent(
        id=str(agent.id),
        slug=agent.slug,
        name=agent.name,
        description=agent.description,
        visibility=VISIBILITY_TO_PROTO[agent.visibility],
        enabled=agent.enabled,
        provider=PROVIDER_TO_PROTO[agent.provider],
        model=agent.model,
        temperature=agent.temperature,
        max_output_tokens=agent.max_output_tokens,
        title_generation=agent.title_generation,
        daily_message_quota=agent.daily_message_quota,
        accessible=view.accessible,
        create_time=timestamp(agent.create_time),
        update_time=timestamp(agent.update_time),
    )
    if view.show_config:
        message.base_url = agent.base_url
        message.api_key_env = agent.api_key_env
        message.system_prompt = agent.system_prompt
    return message


def agent_fields_from_proto(agent: agent_pb2.Agent) -> AgentFields:
    return AgentFields(
        slug=agent.slug,
        name=agent.name,
        description=agent.description,
        visibility=enum_from_proto("agent.visibility", agent.visibility, VISIBILITY_FROM_PROTO, unknown_is_unset=True),
        enabled=agent.enabled,
        provider=enum_from_proto("agent.provider", agent.provider, PROVIDER_FROM_PROTO, unknown_is_unset=True),
        model=agent.model,
        base_url=agent.base_url,
        api_key_env=agent.api_key_env,
        system_prompt=agent.system_prompt,
        temperature=_from_float32(agent.temperature),
        max_output_tokens=agent.max_output_tokens,
        title_generation=agent.title_generation,
        daily_message_quota=agent.daily_message_quota if agent.HasField("daily_message_quota") else None,
    )


def _from_float32(value: float) -> float:
    """The shortest decimal that is the same float32, so 0.7 is stored as 0.7, not 0.699999988."""
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", candidate))[0] == value:
            return candidate
    return value  # NaN: left for validation to refuse


def access_decision_to_proto(decision: AccessDecision) -> agent_access_pb2.CheckAgentAccessResponse:
    return agent_access_pb2.CheckAgentAccessResponse(
        allowed=decision.allowed,
        reason=REASON_TO_PROTO[decision.reason],
        remaining_quota=decision.remaining_quota,
    )


def grant_to_proto(grant: AgentGrant) -> agent_access_pb2.AgentGrant:
    return agent_access_pb2.AgentGrant(
        id=str(grant.id),
        user_id=str(grant.user_id),
        agent_id=str(grant.agent_id),
        expire_time=timestamp(grant.expire_time),
        create_time=timestamp(grant.create_time),
        granted_by=str(grant.granted_by) if grant.granted_by else "",
    )


def usage_to_proto(usage: AgentUsage) -> agent_access_pb2.AgentUsage:
    return agent_access_pb2.AgentUsage(
        agent_id=str(usage.agent_id),
        message_count=usage.message_count,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        remaining_daily_quota=usage.remaining_daily_quota,
    )
