"""parley.admin.v1.AdminService handlers: protobuf in, domain call, protobuf out.

Decoding failures of the wire format itself (an enum number this server does
not know, a Timestamp or Duration outside what protobuf allows) are reported
here as INVALID_ARGUMENT, because only this layer sees the raw numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from parley.admin.v1 import admin_pb2, admin_pb2_grpc
from parley_server.accounts.convert import ROLE_FROM_PROTO, STATE_FROM_PROTO, STATE_TO_PROTO, user_to_proto
from parley_server.admin.service import AdminService, UserChanges, UserFilter, WaitlistItem
from parley_server.admin.stats_service import Stats
from parley_server.common.caller import require_caller
from parley_server.common.convert import duration, from_duration, from_timestamp, timestamp
from parley_server.common.errors import FieldViolation, InvalidArgument
from parley_server.common.handlers import Ctx

K = TypeVar("K", bound=int)
T = TypeVar("T")


class AdminHandlers(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, service: AdminService) -> None:
        self._service = service

    async def ListUsers(self, request: admin_pb2.ListUsersRequest, context: Ctx) -> admin_pb2.ListUsersResponse:
        where = UserFilter(
            email_contains=request.email_contains,
            role=_enum("role", request.role, ROLE_FROM_PROTO),
            state=_enum("state", request.state, STATE_FROM_PROTO),
            premium=request.premium if request.HasField("premium") else None,
        )
        page = await self._service.list_users(request.page_size, request.page_token, where)
        return admin_pb2.ListUsersResponse(
            users=[user_to_proto(u) for u in page.items], next_page_token=page.next_page_token
        )

    async def GetUser(self, request: admin_pb2.GetUserRequest, context: Ctx) -> admin_pb2.GetUserResponse:
        user = await self._service.get_user(request.user_id)
        return admin_pb2.GetUserResponse(user=user_to_proto(user))

    async def UpdateUser(self, request: admin_pb2.UpdateUserRequest, context: Ctx) -> admin_pb2.UpdateUserResponse:
        paths = list(request.update_mask.paths)
        # AIP-134: fields outside the mask are not read, whatever they hold.
        changes = UserChanges(
            role=_enum("user.role", request.user.role, ROLE_FROM_PROTO) if "role" in paths else None,
            state=_enum("user.state", request.user.state, STATE_FROM_PROTO) if "state" in paths else None,
            premium=request.user.premium,
            display_name=request.user.display_name,
        )
        user = await self._service.update_user(require_caller(), request.user.id, paths, changes)
        return admin_pb2.UpdateUserResponse(user=user_to_proto(user))

    async def DeleteUser(self, request: admin_pb2.DeleteUserRequest, context: Ctx) -> admin_pb2.DeleteUserResponse:
        await self._service.delete_user(require_caller(), request.user_id)
        return admin_pb2.DeleteUserResponse()

    async def ListWaitlist(
        self, request: admin_pb2.ListWaitlistRequest, context: Ctx
    ) -> admin_pb2.ListWaitlistResponse:
        page = await self._service.list_waitlist(request.page_size, request.page_token, request.include_approved)
        return admin_pb2.ListWaitlistResponse(
            entries=[_entry(item) for item in page.items], next_page_token=page.next_page_token
        )

    async def ApproveWaitlistEntries(
        self, request: admin_pb2.ApproveWaitlistEntriesRequest, context: Ctx
    ) -> admin_pb2.ApproveWaitlistEntriesResponse:
        items = await self._service.approve_waitlist_entries(require_caller(), list(request.entry_ids))
        return admin_pb2.ApproveWaitlistEntriesResponse(approved_entries=[_entry(item) for item in items])

    async def GetStats(self, request: admin_pb2.GetStatsRequest, context: Ctx) -> admin_pb2.GetStatsResponse:
        stats = await self._service.get_stats(
            from_timestamp(request, "start_time"),
            from_timestamp(request, "end_time"),
        )
        return admin_pb2.GetStatsResponse(stats=_stats(stats))

    async def GetSystemHealth(
        self, request: admin_pb2.GetSystemHealthRequest, context: Ctx
    ) -> admin_pb2.GetSystemHealthResponse:
        health = await self._service.system_health()
        return admin_pb2.GetSystemHealthResponse(
            database_reachable=health.database_reachable,
            database_latency=duration(health.database_latency) if health.database_latency is not None else None,
            uptime=duration(health.uptime),
            version=health.version,
            active_chat_streams=health.active_chat_streams,
            active_generations=health.active_generations,
        )

    async def CleanupEmptyConversations(
        self, request: admin_pb2.CleanupEmptyConversationsRequest, context: Ctx
    ) -> admin_pb2.CleanupEmptyConversationsResponse:
        older_than = from_duration(request, "older_than")
        deleted = await self._service.cleanup_empty_conversations(require_caller(), older_than)
        return admin_pb2.CleanupEmptyConversationsResponse(deleted_count=deleted)


def _enum(field: str, number: K, mapping: Mapping[K, T]) -> T | None:
    """The domain value of a proto enum number; None for UNSPECIFIED (0)."""
    if number == 0:
        return None
    if number not in mapping:
        raise InvalidArgument([FieldViolation(field, f"unknown enum value {number}")])
    return mapping[number]


def _entry(item: WaitlistItem) -> admin_pb2.WaitlistEntry:
    entry = item.entry
    return admin_pb2.WaitlistEntry(
        id=str(entry.id),
        email=entry.email,
        note=entry.note,
        position=item.position,
        create_time=timestamp(entry.create_time),
        approve_time=timestamp(entry.approve_time),
        invite_sent=entry.invite_sent,
    )


def _stats(stats: Stats) -> admin_pb2.Stats:
    return admin_pb2.Stats(
        users_by_state=[
            admin_pb2.UserStateCount(state=proto, count=stats.users_by_state[state])
            for state, proto in STATE_TO_PROTO.items()
        ],
        total_users=stats.total_users,
        total_conversations=stats.total_conversations,
        total_messages=stats.total_messages,
        new_users_per_day=[admin_pb2.DailyCount(day=d.day.isoformat(), count=d.count) for d in stats.new_users_per_day],
        active_users_per_day=[
            admin_pb2.DailyCount(day=d.day.isoformat(), count=d.count) for d in stats.active_users_per_day
        ],
        messages_per_day_per_agent=[
            admin_pb2.AgentDailyCount(day=m.day.isoformat(), agent_id=str(m.agent_id), count=m.count)
            for m in stats.messages_per_day_per_agent
        ],
        top_agents=[
            admin_pb2.AgentCount(agent_id=str(a.agent_id), agent_name=a.agent_name, message_count=a.message_count)
            for a in stats.top_agents
        ],
        compute_time=timestamp(stats.compute_time),
    )
