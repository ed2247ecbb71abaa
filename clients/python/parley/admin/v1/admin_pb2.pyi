import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parley.api.v1 import access_pb2 as _access_pb2
from parley.auth.v1 import auth_pb2 as _auth_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WaitlistEntry(_message.Message):
    __slots__ = ("id", "email", "note", "position", "create_time", "approve_time", "invite_sent")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    APPROVE_TIME_FIELD_NUMBER: _ClassVar[int]
    INVITE_SENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    note: str
    position: int
    create_time: _timestamp_pb2.Timestamp
    approve_time: _timestamp_pb2.Timestamp
    invite_sent: bool
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ..., note: _Optional[str] = ..., position: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., invite_sent: _Optional[bool] = ...) -> None: ...

class UserStateCount(_message.Message):
    __slots__ = ("state", "count")
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    state: _auth_pb2.UserState
    count: int
    def __init__(self, state: _Optional[_Union[_auth_pb2.UserState, str]] = ..., count: _Optional[int] = ...) -> None: ...

class DailyCount(_message.Message):
    __slots__ = ("day", "count")
    DAY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    day: str
    count: int
    def __init__(self, day: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class AgentDailyCount(_message.Message):
    __slots__ = ("day", "agent_id", "count")
    DAY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    day: str
    agent_id: str
    count: int
    def __init__(self, day: _Optional[str] = ..., agent_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class AgentCount(_message.Message):
    __slots__ = ("agent_id", "agent_name", "message_count")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    message_count: int
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., message_count: _Optional[int] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("users_by_state", "total_users", "total_conversations", "total_messages", "new_users_per_day", "active_users_per_day", "messages_per_day_per_agent", "top_agents", "compute_time", "feedback_per_day_per_agent")
    USERS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_USERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEW_USERS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_USERS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_PER_DAY_PER_AGENT_FIELD_NUMBER: _ClassVar[int]
    TOP_AGENTS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_PER_DAY_PER_AGENT_FIELD_NUMBER: _ClassVar[int]
    users_by_state: _containers.RepeatedCompositeFieldContainer[UserStateCount]
    total_users: int
    total_conversations: int
    total_messages: int
    new_users_per_day: _containers.RepeatedCompositeFieldContainer[DailyCount]
    active_users_per_day: _containers.RepeatedCompositeFieldContainer[DailyCount]
    messages_per_day_per_agent: _containers.RepeatedCompositeFieldContainer[AgentDailyCount]
    top_agents: _containers.RepeatedCompositeFieldContainer[AgentCount]
    compute_time: _timestamp_pb2.Timestamp
    feedback_per_day_per_agent: _containers.RepeatedCompositeFieldContainer[AgentDailyFeedback]
    def __init__(self, users_by_state: _Optional[_Iterable[_Union[UserStateCount, _Mapping]]] = ..., total_users: _Optional[int] = ..., total_conversations: _Optional[int] = ..., total_messages: _Optional[int] = ..., new_users_per_day: _Optional[_Iterable[_Union[DailyCount, _Mapping]]] = ..., active_users_per_day: _Optional[_Iterable[_Union[DailyCount, _Mapping]]] = ..., messages_per_day_per_agent: _Optional[_Iterable[_Union[AgentDailyCount, _Mapping]]] = ..., top_agents: _Optional[_Iterable[_Union[AgentCount, _Mapping]]] = ..., compute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., feedback_per_day_per_agent: _Optional[_Iterable[_Union[AgentDailyFeedback, _Mapping]]] = ...) -> None: ...

class AgentDailyFeedback(_message.Message):
    __slots__ = ("day", "agent_id", "thumbs_up", "thumbs_down")
    DAY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    THUMBS_UP_FIELD_NUMBER: _ClassVar[int]
    THUMBS_DOWN_FIELD_NUMBER: _ClassVar[int]
    day: str
    agent_id: str
    thumbs_up: int
    thumbs_down: int
    def __init__(self, day: _Optional[str] = ..., agent_id: _Optional[str] = ..., thumbs_up: _Optional[int] = ..., thumbs_down: _Optional[int] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "email_contains", "role", "state", "premium")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EMAIL_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREMIUM_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    email_contains: str
    role: _auth_pb2.Role
    state: _auth_pb2.UserState
    premium: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., email_contains: _Optional[str] = ..., role: _Optional[_Union[_auth_pb2.Role, str]] = ..., state: _Optional[_Union[_auth_pb2.UserState, str]] = ..., premium: _Optional[bool] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users", "next_page_token")
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_auth_pb2.User]
    next_page_token: str
    def __init__(self, users: _Optional[_Iterable[_Union[_auth_pb2.User, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: _auth_pb2.User
    def __init__(self, user: _Optional[_Union[_auth_pb2.User, _Mapping]] = ...) -> None: ...

class UpdateUserRequest(_message.Message):
    __slots__ = ("user", "update_mask")
    USER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    user: _auth_pb2.User
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, user: _Optional[_Union[_auth_pb2.User, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: _auth_pb2.User
    def __init__(self, user: _Optional[_Union[_auth_pb2.User, _Mapping]] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWaitlistRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "include_approved")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_APPROVED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    include_approved: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_approved: _Optional[bool] = ...) -> None: ...

class ListWaitlistResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[WaitlistEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[WaitlistEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ApproveWaitlistEntriesRequest(_message.Message):
    __slots__ = ("entry_ids",)
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ApproveWaitlistEntriesResponse(_message.Message):
    __slots__ = ("approved_entries",)
    APPROVED_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    approved_entries: _containers.RepeatedCompositeFieldContainer[WaitlistEntry]
    def __init__(self, approved_entries: _Optional[_Iterable[_Union[WaitlistEntry, _Mapping]]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: Stats
    def __init__(self, stats: _Optional[_Union[Stats, _Mapping]] = ...) -> None: ...

class GetSystemHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSystemHealthResponse(_message.Message):
    __slots__ = ("database_reachable", "database_latency", "uptime", "version", "active_chat_streams", "active_generations", "replicas")
    DATABASE_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    DATABASE_LATENCY_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CHAT_STREAMS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    database_reachable: bool
    database_latency: _duration_pb2.Duration
    uptime: _duration_pb2.Duration
    version: str
    active_chat_streams: int
    active_generations: int
    replicas: _containers.RepeatedCompositeFieldContainer[Replica]
    def __init__(self, database_reachable: _Optional[bool] = ..., database_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., version: _Optional[str] = ..., active_chat_streams: _Optional[int] = ..., active_generations: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[Replica, _Mapping]]] = ...) -> None: ...

class Replica(_message.Message):
    __slots__ = ("id", "address", "host", "pid", "version", "start_time", "heartbeat_time", "active_chat_streams", "active_generations", "current")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CHAT_STREAMS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    host: str
    pid: int
    version: str
    start_time: _timestamp_pb2.Timestamp
    heartbeat_time: _timestamp_pb2.Timestamp
    active_chat_streams: int
    active_generations: int
    current: bool
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., version: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active_chat_streams: _Optional[int] = ..., active_generations: _Optional[int] = ..., current: _Optional[bool] = ...) -> None: ...

class CleanupEmptyConversationsRequest(_message.Message):
    __slots__ = ("older_than",)
    OLDER_THAN_FIELD_NUMBER: _ClassVar[int]
    older_than: _duration_pb2.Duration
    def __init__(self, older_than: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CleanupEmptyConversationsResponse(_message.Message):
    __slots__ = ("deleted_count",)
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    def __init__(self, deleted_count: _Optional[int] = ...) -> None: ...
