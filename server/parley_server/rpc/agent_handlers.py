"""parley.agent.v1.AgentService handlers: protobuf in, domain call, protobuf out.

SKELETON: methods not overridden answer UNIMPLEMENTED.
"""

from __future__ import annotations

from parley.agent.v1 import agent_pb2_grpc

from parley_server.domain.agent_service import AgentService


class AgentHandlers(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, service: AgentService) -> None:
        self._service = service
