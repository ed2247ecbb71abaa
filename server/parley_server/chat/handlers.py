"""parley.chat.v1.ChatService handlers: domain updates to stream events.

SendMessage and ResumeStream share one mapping from domain updates to the
Generation* events; an Ended update becomes usage, then completed, failed or
cancelled according to the final message's state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley_server.chat.service import ChatService
from parley_server.chat.updates import Accepted, ChatUpdate, Ended, TextChunk
from parley_server.common.caller import require_caller
from parley_server.conversations.convert import conversation_to_proto, message_to_proto
from parley_server.db.models import MessageState

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R", chat_pb2.SendMessageResponse, chat_pb2.ResumeStreamResponse)


def _events(update: ChatUpdate, make: Callable[..., R]) -> list[R]:
    if isinstance(update, Accepted):
        return [
            make(
                accepted=chat_pb2.GenerationAccepted(
                    user_message=message_to_proto(update.user_message),
                    assistant_message_id=str(update.assistant_message_id),
                )
            )
        ]
    if isinstance(update, TextChunk):
        return [make(delta=chat_pb2.GenerationDelta(text=update.text, offset=update.offset))]
    assert isinstance(update, Ended)
    message = message_to_proto(update.message)
    usage = make(usage=chat_pb2.GenerationUsage(usage=message.usage))
    if update.message.state is MessageState.COMPLETE:
        return [usage, make(completed=chat_pb2.GenerationCompleted(message=message))]
    if update.message.state is MessageState.CANCELLED:
        return [usage, make(cancelled=chat_pb2.GenerationCancelled(message=message))]
    return [usage, make(failed=chat_pb2.GenerationFailed(reason=update.message.failure_reason, message=message))]


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
            for event in _events(update, chat_pb2.SendMessageResponse):
                yield event

    async def ResumeStream(
        self, request: chat_pb2.ResumeStreamRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.ResumeStreamResponse]:
        async for update in self._chat.resume_stream(require_caller(), request.message_id, request.offset):
            for event in _events(update, chat_pb2.ResumeStreamResponse):
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
            if update.message_created is not None:
                yield chat_pb2.WatchConversationResponse(message_created=message_to_proto(update.message_created))
            elif update.delta is not None:
                delta = update.delta
                yield chat_pb2.WatchConversationResponse(
                    delta=chat_pb2.MessageDelta(message_id=str(delta.message_id), text=delta.text, offset=delta.offset)
                )
            elif update.message_completed is not None:
                yield chat_pb2.WatchConversationResponse(message_completed=message_to_proto(update.message_completed))
            elif update.conversation_updated is not None:
                yield chat_pb2.WatchConversationResponse(
                    conversation_updated=conversation_to_proto(update.conversation_updated)
                )
            elif update.conversation_deleted is not None:
                yield chat_pb2.WatchConversationResponse(conversation_deleted=str(update.conversation_deleted))
