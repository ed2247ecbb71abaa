"""parley.admin.v1.AdminService handlers: protobuf in, domain call, protobuf out (see admin.convert)."""

from __future__ import annotations

from parley.admin.v1 import admin_pb2, admin_pb2_grpc
from parley_server.accounts.convert import user_to_proto
from parley_server.admin.convert import (
    stats_to_proto,
    system_health_to_proto,
    user_changes_from_proto,
    user_filter_from_proto,
    waitlist_entry_to_proto,
)
from parley_server.admin.service import AdminService
from parley_server.common.caller import require_caller
from parley_server.common.convert import from_duration, from_timestamp
from parley_server.common.handlers import Ctx


class AdminHandlers(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, service: AdminService) -> None:
        self._service = service

    async def ListUsers(self, request: admin_pb2.ListUsersRequest, context: Ctx) -> admin_pb2.ListUsersResponse:
        where = user_filter_from_proto(request)
        page = await self._service.list_users(request.page_size, request.page_token, where)
        return admin_pb2.ListUsersResponse(
            users=[user_to_proto(u) for u in page.items], next_page_token=page.next_page_token
        )

    async def GetUser(self, request: admin_pb2.GetUserRequest, context: Ctx) -> admin_pb2.GetUserResponse:
        user = await self._service.get_user(request.user_id)
        return admin_pb2.GetUserResponse(user=user_to_proto(user))

    async def UpdateUser(self, request: admin_pb2.UpdateUserRequest, context: Ctx) -> admin_pb2.UpdateUserResponse:
        paths = list(request.update_mask.paths)
        changes = user_changes_from_proto(request.user, paths)
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
            entries=[waitlist_entry_to_proto(item) for item in page.items], next_page_token=page.next_page_token
        )

    async def ApproveWaitlistEntries(
        self, request: admin_pb2.ApproveWaitlistEntriesRequest, context: Ctx
    ) -> admin_pb2.ApproveWaitlistEntriesResponse:
        items = await self._service.approve_waitlist_entries(require_caller(), list(request.entry_ids))
        return admin_pb2.ApproveWaitlistEntriesResponse(
            approved_entries=[waitlist_entry_to_proto(item) for item in items]
        )

    async def GetStats(self, request: admin_pb2.GetStatsRequest, context: Ctx) -> admin_pb2.GetStatsResponse:
        stats = await self._service.get_stats(
            from_timestamp(request, "start_time"),
            from_timestamp(request, "end_time"),
        )
        return admin_pb2.GetStatsResponse(stats=stats_to_proto(stats))

    async def GetSystemHealth(
        self, request: admin_pb2.GetSystemHealthRequest, context: Ctx
    ) -> admin_pb2.GetSystemHealthResponse:
        return system_health_to_proto(await self._service.system_health())

    async def CleanupEmptyConversations(
        self, request: admin_pb2.CleanupEmptyConversationsRequest, context: Ctx
    ) -> admin_pb2.CleanupEmptyConversationsResponse:
        older_than = from_duration(request, "older_than")
        deleted = await self._service.cleanup_empty_conversations(require_caller(), older_than)
        return admin_pb2.CleanupEmptyConversationsResponse(deleted_count=deleted)
