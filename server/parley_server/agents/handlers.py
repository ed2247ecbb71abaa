"""parley.agent.v1.AgentService handlers: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from parley.agent.v1 import agent_pb2, agent_pb2_grpc
from parley_server.agents.convert import agent_fields_from_proto, agent_to_proto
from parley_server.agents.service import AgentService
from parley_server.common.caller import require_caller

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class AgentHandlers(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, service: AgentService) -> None:
        self._service = service

    async def ListAgents(self, request: agent_pb2.ListAgentsRequest, context: Ctx) -> agent_pb2.ListAgentsResponse:
        page = await self._service.list_agents(require_caller(), request.page_size, request.page_token)
        return agent_pb2.ListAgentsResponse(
            agents=[agent_to_proto(view) for view in page.items], next_page_token=page.next_page_token
        )

    async def GetAgent(self, request: agent_pb2.GetAgentRequest, context: Ctx) -> agent_pb2.GetAgentResponse:
        view = await self._service.get_agent(require_caller(), request.id)
        return agent_pb2.GetAgentResponse(agent=agent_to_proto(view))

    async def CreateAgent(self, request: agent_pb2.CreateAgentRequest, context: Ctx) -> agent_pb2.CreateAgentResponse:
        view = await self._service.create_agent(
            require_caller(), agent_fields_from_proto(request.agent), request.request_id
        )
        return agent_pb2.CreateAgentResponse(agent=agent_to_proto(view))

    async def UpdateAgent(self, request: agent_pb2.UpdateAgentRequest, context: Ctx) -> agent_pb2.UpdateAgentResponse:
        view = await self._service.update_agent(
            require_caller(),
            request.agent.id,
            agent_fields_from_proto(request.agent),
            list(request.update_mask.paths),
        )
        return agent_pb2.UpdateAgentResponse(agent=agent_to_proto(view))

    async def DeleteAgent(self, request: agent_pb2.DeleteAgentRequest, context: Ctx) -> agent_pb2.DeleteAgentResponse:
        await self._service.delete_agent(request.id)
        return agent_pb2.DeleteAgentResponse()
