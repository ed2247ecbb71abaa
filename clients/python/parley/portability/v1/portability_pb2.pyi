from google.api import annotations_pb2 as _annotations_pb2
from parley.api.v1 import access_pb2 as _access_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImportOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_OUTCOME_UNSPECIFIED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_CREATED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_SKIPPED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_FAILED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_IGNORED: _ClassVar[ImportOutcome]
IMPORT_OUTCOME_UNSPECIFIED: ImportOutcome
IMPORT_OUTCOME_CREATED: ImportOutcome
IMPORT_OUTCOME_SKIPPED: ImportOutcome
IMPORT_OUTCOME_FAILED: ImportOutcome
IMPORT_OUTCOME_IGNORED: ImportOutcome

class ExportChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ExportConversationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportConversationsResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: ExportChunk
    def __init__(self, chunk: _Optional[_Union[ExportChunk, _Mapping]] = ...) -> None: ...

class ExportUserConversationsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ExportUserConversationsResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: ExportChunk
    def __init__(self, chunk: _Optional[_Union[ExportChunk, _Mapping]] = ...) -> None: ...

class ImportConversationsRequest(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ImportResult(_message.Message):
    __slots__ = ("line", "source_conversation_id", "conversation_id", "outcome", "error")
    LINE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    line: int
    source_conversation_id: str
    conversation_id: str
    outcome: ImportOutcome
    error: str
    def __init__(self, line: _Optional[int] = ..., source_conversation_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., outcome: _Optional[_Union[ImportOutcome, str]] = ..., error: _Optional[str] = ...) -> None: ...

class ImportConversationsResponse(_message.Message):
    __slots__ = ("results", "created_count", "skipped_count", "failed_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImportResult]
    created_count: int
    skipped_count: int
    failed_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[ImportResult, _Mapping]]] = ..., created_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., failed_count: _Optional[int] = ...) -> None: ...

class DeleteAllConversationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteAllConversationsResponse(_message.Message):
    __slots__ = ("deleted_count",)
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    def __init__(self, deleted_count: _Optional[int] = ...) -> None: ...

class ExportAccountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportAccountResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: ExportChunk
    def __init__(self, chunk: _Optional[_Union[ExportChunk, _Mapping]] = ...) -> None: ...
