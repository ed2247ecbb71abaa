import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parley.agent.v1 import agent_pb2 as _agent_pb2
from parley.api.v1 import access_pb2 as _access_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccessReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_REASON_UNSPECIFIED: _ClassVar[AccessReason]
    ACCESS_REASON_OK: _ClassVar[AccessReason]
    ACCESS_REASON_PREMIUM_REQUIRED: _ClassVar[AccessReason]
    ACCESS_REASON_NOT_GRANTED: _ClassVar[AccessReason]
    ACCESS_REASON_AGENT_DISABLED: _ClassVar[AccessReason]
    ACCESS_REASON_QUOTA_EXCEEDED: _ClassVar[AccessReason]
ACCESS_REASON_UNSPECIFIED: AccessReason
ACCESS_REASON_OK: AccessReason
ACCESS_REASON_PREMIUM_REQUIRED: AccessReason
ACCESS_REASON_NOT_GRANTED: AccessReason
ACCESS_REASON_AGENT_DISABLED: AccessReason
ACCESS_REASON_QUOTA_EXCEEDED: AccessReason

class AgentUsage(_message.Message):
    __slots__ = ("agent_id", "message_count", "prompt_tokens", "completion_tokens", "remaining_daily_quota")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_DAILY_QUOTA_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    message_count: int
    prompt_tokens: int
    completion_tokens: int
    remaining_daily_quota: int
    def __init__(self, agent_id: _Optional[str] = ..., message_count: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., remaining_daily_quota: _Optional[int] = ...) -> None: ...

class AgentGrant(_message.Message):
    __slots__ = ("id", "user_id", "agent_id", "expire_time", "create_time", "granted_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    GRANTED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    agent_id: str
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    granted_by: str
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granted_by: _Optional[str] = ...) -> None: ...

class CheckAgentAccessRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class CheckAgentAccessResponse(_message.Message):
    __slots__ = ("allowed", "reason", "remaining_quota")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REMAINING_QUOTA_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: AccessReason
    remaining_quota: int
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[AccessReason, str]] = ..., remaining_quota: _Optional[int] = ...) -> None: ...

class ListAccessibleAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAccessibleAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[_agent_pb2.Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[_agent_pb2.Agent, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: _containers.RepeatedCompositeFieldContainer[AgentUsage]
    def __init__(self, usage: _Optional[_Iterable[_Union[AgentUsage, _Mapping]]] = ...) -> None: ...

class GrantAgentAccessRequest(_message.Message):
    __slots__ = ("user_id", "agent_id", "expire_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    agent_id: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantAgentAccessResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: AgentGrant
    def __init__(self, grant: _Optional[_Union[AgentGrant, _Mapping]] = ...) -> None: ...

class RevokeAgentAccessRequest(_message.Message):
    __slots__ = ("user_id", "agent_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    agent_id: str
    def __init__(self, user_id: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class RevokeAgentAccessResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentGrantsRequest(_message.Message):
    __slots__ = ("user_id", "agent_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    agent_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAgentGrantsResponse(_message.Message):
    __slots__ = ("grants", "next_page_token")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[AgentGrant]
    next_page_token: str
    def __init__(self, grants: _Optional[_Iterable[_Union[AgentGrant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
