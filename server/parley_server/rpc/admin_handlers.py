"""parley.admin.v1.AdminService handlers: protobuf in, domain call, protobuf out.

SKELETON: methods not overridden answer UNIMPLEMENTED.
"""

from __future__ import annotations

from parley.admin.v1 import admin_pb2_grpc

from parley_server.domain.admin_service import AdminService


class AdminHandlers(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, service: AdminService) -> None:
        self._service = service
