"""parley.conversation.v1.ConversationService handlers: protobuf in, domain call, protobuf out.

SKELETON: methods not overridden answer UNIMPLEMENTED.
"""

from __future__ import annotations

from parley.conversation.v1 import conversation_pb2_grpc

from parley_server.domain.conversation_service import ConversationService


class ConversationHandlers(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, service: ConversationService) -> None:
        self._service = service
