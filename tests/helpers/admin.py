"""Helpers shared by the AdminService tests."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from parley.admin.v1 import admin_pb2 as pb
from parley.auth.v1 import auth_pb2
from parley_server.app import App
from tests.helpers.support import expect_error, snapshot


async def expect_invalid(app: App, call: Awaitable[Any], *fields: str) -> None:
    """INVALID_ARGUMENT naming each of fields, and not one row changed."""
    before = await snapshot(app)
    details = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
    for field in fields:
        assert field in details.violations, details.violations
    assert await snapshot(app) == before


def update(user_id: str, paths: list[str], **fields: Any) -> pb.UpdateUserRequest:
    """An UpdateUserRequest for user_id with update_mask paths and User fields."""
    return pb.UpdateUserRequest(user=auth_pb2.User(id=user_id, **fields), update_mask=FieldMask(paths=paths))
