from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Access(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_UNSPECIFIED: _ClassVar[Access]
    ACCESS_PUBLIC: _ClassVar[Access]
    ACCESS_AUTHENTICATED: _ClassVar[Access]
    ACCESS_USER: _ClassVar[Access]
    ACCESS_ADMIN: _ClassVar[Access]

class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_UNSPECIFIED: _ClassVar[Scope]
    SCOPE_READ: _ClassVar[Scope]
    SCOPE_WRITE: _ClassVar[Scope]
    SCOPE_CHAT: _ClassVar[Scope]
    SCOPE_ADMIN: _ClassVar[Scope]
    SCOPE_ACT_AS_USER: _ClassVar[Scope]
ACCESS_UNSPECIFIED: Access
ACCESS_PUBLIC: Access
ACCESS_AUTHENTICATED: Access
ACCESS_USER: Access
ACCESS_ADMIN: Access
SCOPE_UNSPECIFIED: Scope
SCOPE_READ: Scope
SCOPE_WRITE: Scope
SCOPE_CHAT: Scope
SCOPE_ADMIN: Scope
SCOPE_ACT_AS_USER: Scope
ACCESS_FIELD_NUMBER: _ClassVar[int]
access: _descriptor.FieldDescriptor
ERRORS_FIELD_NUMBER: _ClassVar[int]
errors: _descriptor.FieldDescriptor
SCOPE_FIELD_NUMBER: _ClassVar[int]
scope: _descriptor.FieldDescriptor

class ErrorCase(_message.Message):
    __slots__ = ("code", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: str
    reason: str
    def __init__(self, code: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
