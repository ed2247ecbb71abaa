"""parley.agent_access.v1.AgentAccessService handlers: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from parley.agent_access.v1 import agent_access_pb2 as pb
from parley.agent_access.v1 import agent_access_pb2_grpc
from parley_server.agents.access_service import AgentAccessService
from parley_server.agents.convert import (
    REASON_TO_PROTO,
    agent_to_proto,
    grant_to_proto,
    usage_to_proto,
)
from parley_server.common.caller import require_caller
from parley_server.common.convert import from_timestamp

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class AgentAccessHandlers(agent_access_pb2_grpc.AgentAccessServiceServicer):
    def __init__(self, service: AgentAccessService) -> None:
        self._service = service

    async def CheckAgentAccess(self, request: pb.CheckAgentAccessRequest, context: Ctx) -> pb.CheckAgentAccessResponse:
        decision = await self._service.check_access(require_caller(), request.agent_id)
        return pb.CheckAgentAccessResponse(
            allowed=decision.allowed,
            reason=REASON_TO_PROTO[decision.reason],
            remaining_quota=decision.remaining_quota,
        )

    async def ListAccessibleAgents(
        self, request: pb.ListAccessibleAgentsRequest, context: Ctx
    ) -> pb.ListAccessibleAgentsResponse:
        views = await self._service.list_accessible_agents(require_caller())
        return pb.ListAccessibleAgentsResponse(agents=[agent_to_proto(view) for view in views])

    async def GetUsage(self, request: pb.GetUsageRequest, context: Ctx) -> pb.GetUsageResponse:
        usage = await self._service.usage(
            require_caller(), from_timestamp(request, "start_time"), from_timestamp(request, "end_time")
        )
        return pb.GetUsageResponse(usage=[usage_to_proto(item) for item in usage])

    async def GrantAgentAccess(self, request: pb.GrantAgentAccessRequest, context: Ctx) -> pb.GrantAgentAccessResponse:
        grant = await self._service.grant(
            require_caller(), request.user_id, request.agent_id, from_timestamp(request, "expire_time")
        )
        return pb.GrantAgentAccessResponse(grant=grant_to_proto(grant))

    async def RevokeAgentAccess(
        self, request: pb.RevokeAgentAccessRequest, context: Ctx
    ) -> pb.RevokeAgentAccessResponse:
        await self._service.revoke(request.user_id, request.agent_id)
        return pb.RevokeAgentAccessResponse()

    async def ListAgentGrants(self, request: pb.ListAgentGrantsRequest, context: Ctx) -> pb.ListAgentGrantsResponse:
        page = await self._service.list_grants(
            require_caller(), request.user_id, request.agent_id, request.page_size, request.page_token
        )
        return pb.ListAgentGrantsResponse(
            grants=[grant_to_proto(grant) for grant in page.items], next_page_token=page.next_page_token
        )
