"""Feedback between protobuf and the domain."""

from __future__ import annotations

from parley.feedback.v1 import feedback_pb2 as pb
from parley_server.common.convert import enum_from_proto, fill_timestamp
from parley_server.db.models import FeedbackReason, MessageFeedback, Rating
from parley_server.feedback.service import FeedbackFilter

RATING_TO_PROTO = {Rating.THUMBS_UP: pb.RATING_THUMBS_UP, Rating.THUMBS_DOWN: pb.RATING_THUMBS_DOWN}
RATING_FROM_PROTO: dict[int, Rating] = {v: k for k, v in RATING_TO_PROTO.items()}
REASON_TO_PROTO = {
    FeedbackReason.INACCURATE: pb.REASON_INACCURATE,
    FeedbackReason.UNHELPFUL: pb.REASON_UNHELPFUL,
    FeedbackReason.INCOMPLETE: pb.REASON_INCOMPLETE,
    FeedbackReason.HARMFUL: pb.REASON_HARMFUL,
    FeedbackReason.IGNORED_INSTRUCTIONS: pb.REASON_IGNORED_INSTRUCTIONS,
    FeedbackReason.OTHER: pb.REASON_OTHER,
}
REASON_FROM_PROTO: dict[int, FeedbackReason] = {v: k for k, v in REASON_TO_PROTO.items()}


def feedback_to_proto(feedback: MessageFeedback) -> pb.MessageFeedback:
    result = pb.MessageFeedback(
        message_id=str(feedback.message_id),
        conversation_id=str(feedback.conversation_id),
        agent_id=str(feedback.agent_id),
        user_id=str(feedback.user_id),
        rating=RATING_TO_PROTO[feedback.rating],
        reason=REASON_TO_PROTO[feedback.reason] if feedback.reason else pb.REASON_UNSPECIFIED,
        comment=feedback.comment,
    )
    fill_timestamp(result.create_time, feedback.create_time)
    fill_timestamp(result.update_time, feedback.update_time)
    return result


def rating_from_proto(number: int) -> Rating | None:
    """The rating to set; unknown numbers are unset, which the domain refuses with the request's other mistakes."""
    return enum_from_proto("feedback.rating", number, RATING_FROM_PROTO, unknown_is_unset=True)


def reason_from_proto(number: int) -> FeedbackReason | None:
    return enum_from_proto("feedback.reason", number, REASON_FROM_PROTO)


def feedback_filter_from_proto(request: pb.ListFeedbackRequest) -> FeedbackFilter:
    rating = enum_from_proto("rating", request.rating, RATING_FROM_PROTO)
    return FeedbackFilter(agent_id=request.agent_id, rating=rating, with_comment=request.with_comment)
