"""parley.portability.v1.PortabilityService handlers: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.portability.v1 import portability_pb2 as pb
from parley.portability.v1 import portability_pb2_grpc
from parley_server.common.caller import require_caller
from parley_server.common.handlers import Ctx
from parley_server.portability.convert import export_chunks, import_data, report_to_proto
from parley_server.portability.service import PortabilityService


class PortabilityHandlers(portability_pb2_grpc.PortabilityServiceServicer):
    def __init__(self, service: PortabilityService) -> None:
        self._service = service

    async def ExportConversations(
        self, request: pb.ExportConversationsRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportConversationsResponse]:
        async for chunk in export_chunks(self._service.export_conversations(require_caller())):
            yield pb.ExportConversationsResponse(chunk=chunk)

    async def ExportUserConversations(
        self, request: pb.ExportUserConversationsRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportUserConversationsResponse]:
        lines = self._service.export_user_conversations(require_caller(), request.user_id)
        async for chunk in export_chunks(lines):
            yield pb.ExportUserConversationsResponse(chunk=chunk)

    async def ImportConversations(
        self, request_iterator: AsyncIterator[pb.ImportConversationsRequest], context: Ctx
    ) -> pb.ImportConversationsResponse:
        report = await self._service.import_conversations(require_caller(), import_data(request_iterator))
        return report_to_proto(report)

    async def DeleteAllConversations(
        self, request: pb.DeleteAllConversationsRequest, context: Ctx
    ) -> pb.DeleteAllConversationsResponse:
        deleted = await self._service.delete_all_conversations(require_caller())
        return pb.DeleteAllConversationsResponse(deleted_count=deleted)

    async def ExportAccount(
        self, request: pb.ExportAccountRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportAccountResponse]:
        async for chunk in export_chunks(self._service.export_account(require_caller())):
            yield pb.ExportAccountResponse(chunk=chunk)
