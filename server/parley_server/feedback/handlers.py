"""parley.feedback.v1.FeedbackService handlers: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from parley.feedback.v1 import feedback_pb2 as pb
from parley.feedback.v1 import feedback_pb2_grpc
from parley_server.common.caller import require_caller
from parley_server.common.handlers import Ctx
from parley_server.feedback.convert import (
    feedback_filter_from_proto,
    feedback_to_proto,
    rating_from_proto,
    reason_from_proto,
)
from parley_server.feedback.service import FeedbackService


class FeedbackHandlers(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, feedback: FeedbackService) -> None:
        self._feedback = feedback

    async def SetMessageFeedback(
        self, request: pb.SetMessageFeedbackRequest, context: Ctx
    ) -> pb.SetMessageFeedbackResponse:
        given = request.feedback
        stored = await self._feedback.set(
            require_caller(),
            given.message_id,
            rating_from_proto(given.rating),
            reason_from_proto(given.reason),
            given.comment,
        )
        return pb.SetMessageFeedbackResponse(feedback=feedback_to_proto(stored))

    async def DeleteMessageFeedback(
        self, request: pb.DeleteMessageFeedbackRequest, context: Ctx
    ) -> pb.DeleteMessageFeedbackResponse:
        await self._feedback.delete(require_caller(), request.message_id)
        return pb.DeleteMessageFeedbackResponse()

    async def ListConversationFeedback(
        self, request: pb.ListConversationFeedbackRequest, context: Ctx
    ) -> pb.ListConversationFeedbackResponse:
        rows = await self._feedback.of_conversation(require_caller(), request.conversation_id)
        return pb.ListConversationFeedbackResponse(feedback=[feedback_to_proto(f) for f in rows])

    async def ListFeedback(self, request: pb.ListFeedbackRequest, context: Ctx) -> pb.ListFeedbackResponse:
        page = await self._feedback.list_all(request.page_size, request.page_token, feedback_filter_from_proto(request))
        return pb.ListFeedbackResponse(
            feedback=[feedback_to_proto(f) for f in page.items], next_page_token=page.next_page_token
        )
