from google.api import annotations_pb2 as _annotations_pb2
from parley.api.v1 import access_pb2 as _access_pb2
from parley.conversation.v1 import conversation_pb2 as _conversation_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationAccepted(_message.Message):
    __slots__ = ("user_message", "assistant_message_id")
    USER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    user_message: _conversation_pb2.Message
    assistant_message_id: str
    def __init__(self, user_message: _Optional[_Union[_conversation_pb2.Message, _Mapping]] = ..., assistant_message_id: _Optional[str] = ...) -> None: ...

class GenerationDelta(_message.Message):
    __slots__ = ("text", "offset")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    text: str
    offset: int
    def __init__(self, text: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class GenerationUsage(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: _conversation_pb2.TokenUsage
    def __init__(self, usage: _Optional[_Union[_conversation_pb2.TokenUsage, _Mapping]] = ...) -> None: ...

class GenerationCompleted(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _conversation_pb2.Message
    def __init__(self, message: _Optional[_Union[_conversation_pb2.Message, _Mapping]] = ...) -> None: ...

class GenerationFailed(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: _conversation_pb2.Message
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[_Union[_conversation_pb2.Message, _Mapping]] = ...) -> None: ...

class GenerationCancelled(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _conversation_pb2.Message
    def __init__(self, message: _Optional[_Union[_conversation_pb2.Message, _Mapping]] = ...) -> None: ...

class MessageDelta(_message.Message):
    __slots__ = ("message_id", "text", "offset")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    text: str
    offset: int
    def __init__(self, message_id: _Optional[str] = ..., text: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("conversation_id", "content", "request_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    content: str
    request_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., content: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("accepted", "delta", "usage", "completed", "failed", "cancelled")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    accepted: GenerationAccepted
    delta: GenerationDelta
    usage: GenerationUsage
    completed: GenerationCompleted
    failed: GenerationFailed
    cancelled: GenerationCancelled
    def __init__(self, accepted: _Optional[_Union[GenerationAccepted, _Mapping]] = ..., delta: _Optional[_Union[GenerationDelta, _Mapping]] = ..., usage: _Optional[_Union[GenerationUsage, _Mapping]] = ..., completed: _Optional[_Union[GenerationCompleted, _Mapping]] = ..., failed: _Optional[_Union[GenerationFailed, _Mapping]] = ..., cancelled: _Optional[_Union[GenerationCancelled, _Mapping]] = ...) -> None: ...

class RegenerateMessageRequest(_message.Message):
    __slots__ = ("message_id", "request_id")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    request_id: str
    def __init__(self, message_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegenerateMessageResponse(_message.Message):
    __slots__ = ("accepted", "delta", "usage", "completed", "failed", "cancelled")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    accepted: GenerationAccepted
    delta: GenerationDelta
    usage: GenerationUsage
    completed: GenerationCompleted
    failed: GenerationFailed
    cancelled: GenerationCancelled
    def __init__(self, accepted: _Optional[_Union[GenerationAccepted, _Mapping]] = ..., delta: _Optional[_Union[GenerationDelta, _Mapping]] = ..., usage: _Optional[_Union[GenerationUsage, _Mapping]] = ..., completed: _Optional[_Union[GenerationCompleted, _Mapping]] = ..., failed: _Optional[_Union[GenerationFailed, _Mapping]] = ..., cancelled: _Optional[_Union[GenerationCancelled, _Mapping]] = ...) -> None: ...

class EditMessageRequest(_message.Message):
    __slots__ = ("message_id", "content", "request_id")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    content: str
    request_id: str
    def __init__(self, message_id: _Optional[str] = ..., content: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class EditMessageResponse(_message.Message):
    __slots__ = ("accepted", "delta", "usage", "completed", "failed", "cancelled")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    accepted: GenerationAccepted
    delta: GenerationDelta
    usage: GenerationUsage
    completed: GenerationCompleted
    failed: GenerationFailed
    cancelled: GenerationCancelled
    def __init__(self, accepted: _Optional[_Union[GenerationAccepted, _Mapping]] = ..., delta: _Optional[_Union[GenerationDelta, _Mapping]] = ..., usage: _Optional[_Union[GenerationUsage, _Mapping]] = ..., completed: _Optional[_Union[GenerationCompleted, _Mapping]] = ..., failed: _Optional[_Union[GenerationFailed, _Mapping]] = ..., cancelled: _Optional[_Union[GenerationCancelled, _Mapping]] = ...) -> None: ...

class ResumeStreamRequest(_message.Message):
    __slots__ = ("message_id", "offset")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    offset: int
    def __init__(self, message_id: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ResumeStreamResponse(_message.Message):
    __slots__ = ("delta", "usage", "completed", "failed", "cancelled")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    delta: GenerationDelta
    usage: GenerationUsage
    completed: GenerationCompleted
    failed: GenerationFailed
    cancelled: GenerationCancelled
    def __init__(self, delta: _Optional[_Union[GenerationDelta, _Mapping]] = ..., usage: _Optional[_Union[GenerationUsage, _Mapping]] = ..., completed: _Optional[_Union[GenerationCompleted, _Mapping]] = ..., failed: _Optional[_Union[GenerationFailed, _Mapping]] = ..., cancelled: _Optional[_Union[GenerationCancelled, _Mapping]] = ...) -> None: ...

class CancelGenerationRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class CancelGenerationResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _conversation_pb2.Message
    def __init__(self, message: _Optional[_Union[_conversation_pb2.Message, _Mapping]] = ...) -> None: ...

class WatchConversationRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class WatchConversationResponse(_message.Message):
    __slots__ = ("message_created", "delta", "message_completed", "conversation_updated", "conversation_deleted")
    MESSAGE_CREATED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_UPDATED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_DELETED_FIELD_NUMBER: _ClassVar[int]
    message_created: _conversation_pb2.Message
    delta: MessageDelta
    message_completed: _conversation_pb2.Message
    conversation_updated: _conversation_pb2.Conversation
    conversation_deleted: str
    def __init__(self, message_created: _Optional[_Union[_conversation_pb2.Message, _Mapping]] = ..., delta: _Optional[_Union[MessageDelta, _Mapping]] = ..., message_completed: _Optional[_Union[_conversation_pb2.Message, _Mapping]] = ..., conversation_updated: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ..., conversation_deleted: _Optional[str] = ...) -> None: ...
