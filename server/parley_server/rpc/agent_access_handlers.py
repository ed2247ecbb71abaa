"""parley.agent_access.v1.AgentAccessService handlers: protobuf in, domain call, protobuf out.

SKELETON: methods not overridden answer UNIMPLEMENTED.
"""

from __future__ import annotations

from parley.agent_access.v1 import agent_access_pb2_grpc

from parley_server.domain.agent_access_service import AgentAccessService


class AgentAccessHandlers(agent_access_pb2_grpc.AgentAccessServiceServicer):
    def __init__(self, service: AgentAccessService) -> None:
        self._service = service
