"""parley.conversation.v1.ConversationService handlers: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from parley.conversation.v1 import conversation_pb2 as pb
from parley.conversation.v1 import conversation_pb2_grpc
from parley_server.common.caller import require_caller
from parley_server.common.convert import from_duration
from parley_server.common.handlers import Ctx
from parley_server.conversations.convert import (
    chat_turn_to_proto,
    conversation_changes_from_proto,
    conversation_filter_from_proto,
    conversation_to_proto,
    conversations_response,
    get_conversation_response,
    message_role_from_proto,
    message_to_proto,
)
from parley_server.conversations.service import ConversationService


class ConversationHandlers(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, service: ConversationService) -> None:
        self._service = service

    async def CreateConversation(
        self, request: pb.CreateConversationRequest, context: Ctx
    ) -> pb.CreateConversationResponse:
        conversation = await self._service.create_conversation(
            require_caller(), request.agent_id, request.title, request.request_id, dict(request.metadata)
        )
        return pb.CreateConversationResponse(conversation=conversation_to_proto(conversation))

    async def GetConversation(self, request: pb.GetConversationRequest, context: Ctx) -> pb.GetConversationResponse:
        conversation = await self._service.get_conversation(require_caller(), request.conversation_id)
        return get_conversation_response(conversation)

    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Ctx
    ) -> pb.ListConversationsResponse:
        where = conversation_filter_from_proto(request)
        page = await self._service.list_conversations(require_caller(), request.page_size, request.page_token, where)
        return conversations_response(page)

    async def GetOrCreateFreshConversation(
        self, request: pb.GetOrCreateFreshConversationRequest, context: Ctx
    ) -> pb.GetOrCreateFreshConversationResponse:
        conversation, created = await self._service.get_or_create_fresh_conversation(require_caller(), request.agent_id)
        return pb.GetOrCreateFreshConversationResponse(
            conversation=conversation_to_proto(conversation), created=created
        )

    async def UpdateConversation(
        self, request: pb.UpdateConversationRequest, context: Ctx
    ) -> pb.UpdateConversationResponse:
        changes = conversation_changes_from_proto(request.conversation)
        conversation = await self._service.update_conversation(
            require_caller(), request.conversation.id, changes, list(request.update_mask.paths)
        )
        return pb.UpdateConversationResponse(conversation=conversation_to_proto(conversation))

    async def DeleteConversation(
        self, request: pb.DeleteConversationRequest, context: Ctx
    ) -> pb.DeleteConversationResponse:
        await self._service.delete_conversation(require_caller(), request.conversation_id)
        return pb.DeleteConversationResponse()

    async def CreateMessage(self, request: pb.CreateMessageRequest, context: Ctx) -> pb.CreateMessageResponse:
        message = await self._service.create_message(
            require_caller(),
            request.conversation_id,
            message_role_from_proto(request),
            request.content,
            request.request_id,
        )
        return pb.CreateMessageResponse(message=message_to_proto(message))

    async def ListMessages(self, request: pb.ListMessagesRequest, context: Ctx) -> pb.ListMessagesResponse:
        page = await self._service.list_messages(
            require_caller(),
            request.conversation_id,
            request.page_size,
            request.page_token,
            all_branches=request.all_branches,
        )
        return pb.ListMessagesResponse(
            messages=[message_to_proto(m.message, (m.sibling_count, m.sibling_index)) for m in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetMessagesForAgent(
        self, request: pb.GetMessagesForAgentRequest, context: Ctx
    ) -> pb.GetMessagesForAgentResponse:
        turns = await self._service.get_messages_for_agent(
            require_caller(), request.conversation_id, request.max_messages, request.max_chars
        )
        return pb.GetMessagesForAgentResponse(messages=[chat_turn_to_proto(t) for t in turns])

    async def SwitchBranch(self, request: pb.SwitchBranchRequest, context: Ctx) -> pb.SwitchBranchResponse:
        conversation = await self._service.switch_branch(require_caller(), request.message_id)
        return pb.SwitchBranchResponse(conversation=conversation_to_proto(conversation))

    async def ClearMessages(self, request: pb.ClearMessagesRequest, context: Ctx) -> pb.ClearMessagesResponse:
        conversation, deleted = await self._service.clear_messages(require_caller(), request.conversation_id)
        return pb.ClearMessagesResponse(conversation=conversation_to_proto(conversation), deleted_count=deleted)

    async def GenerateTitle(self, request: pb.GenerateTitleRequest, context: Ctx) -> pb.GenerateTitleResponse:
        conversation = await self._service.generate_title(require_caller(), request.conversation_id)
        return pb.GenerateTitleResponse(conversation=conversation_to_proto(conversation))

    async def CleanupEmptyConversations(
        self, request: pb.CleanupEmptyConversationsRequest, context: Ctx
    ) -> pb.CleanupEmptyConversationsResponse:
        deleted = await self._service.cleanup_own_empty_conversations(
            require_caller(), from_duration(request, "older_than")
        )
        return pb.CleanupEmptyConversationsResponse(deleted_count=deleted)
