"""parley.chat.v1.ChatService handlers: protobuf in, domain call, protobuf out (see chat.convert)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley_server.chat.convert import chat_update_to_proto, watch_update_to_proto
from parley_server.chat.service import ChatService
from parley_server.common.caller import require_caller
from parley_server.common.handlers import Ctx
from parley_server.conversations.convert import message_to_proto


class ChatHandlers(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    async def SendMessage(
        self, request: chat_pb2.SendMessageRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.SendMessageResponse]:
        updates = self._chat.send_message(
            require_caller(), request.conversation_id, request.content, request.request_id
        )
        async for update in updates:
            for event in chat_update_to_proto(update, chat_pb2.SendMessageResponse):
                yield event

    async def RegenerateMessage(
        self, request: chat_pb2.RegenerateMessageRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.RegenerateMessageResponse]:
        async for update in self._chat.regenerate_message(require_caller(), request.message_id, request.request_id):
            for event in chat_update_to_proto(update, chat_pb2.RegenerateMessageResponse):
                yield event

    async def EditMessage(
        self, request: chat_pb2.EditMessageRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.EditMessageResponse]:
        updates = self._chat.edit_message(require_caller(), request.message_id, request.content, request.request_id)
        async for update in updates:
            for event in chat_update_to_proto(update, chat_pb2.EditMessageResponse):
                yield event

    async def ResumeStream(
        self, request: chat_pb2.ResumeStreamRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.ResumeStreamResponse]:
        async for update in self._chat.resume_stream(require_caller(), request.message_id, request.offset):
            for event in chat_update_to_proto(update, chat_pb2.ResumeStreamResponse):
                yield event

    async def CancelGeneration(
        self, request: chat_pb2.CancelGenerationRequest, context: Ctx
    ) -> chat_pb2.CancelGenerationResponse:
        message = await self._chat.cancel_generation(require_caller(), request.message_id)
        return chat_pb2.CancelGenerationResponse(message=message_to_proto(message))

    async def WatchConversation(
        self, request: chat_pb2.WatchConversationRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.WatchConversationResponse]:
        async for update in self._chat.watch_conversation(require_caller(), request.conversation_id):
            yield watch_update_to_proto(update)
