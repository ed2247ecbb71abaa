import grpc

from parley.auth.v1 import auth_pb2
from tests.helpers.errors import expect_error
from tests.helpers.stubs import Stubs


async def test_register_verify_login_get_current_user(stubs: Stubs) -> None:
    account = await stubs.active_account()
    me = await stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=account.md)
    assert me.user.email == "ada@example.com"
    assert me.user.state == auth_pb2.USER_STATE_ACTIVE


async def test_missing_token(stubs: Stubs) -> None:
    await expect_error(
        stubs.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest()), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"
    )
