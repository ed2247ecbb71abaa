"""parley.auth.v1.AuthService handlers: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley_server.accounts.auth_service import AuthService
from parley_server.accounts.convert import tokens_to_proto, user_to_proto
from parley_server.common.caller import current_client_address, require_caller

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class AuthHandlers(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    async def Register(self, request: auth_pb2.RegisterRequest, context: Ctx) -> auth_pb2.RegisterResponse:
        user = await self._auth.register(request.email, request.password, request.display_name, request.invite_code)
        return auth_pb2.RegisterResponse(user=user_to_proto(user))

    async def Login(self, request: auth_pb2.LoginRequest, context: Ctx) -> auth_pb2.LoginResponse:
        tokens, user = await self._auth.login(request.email, request.password, current_client_address.get())
        return auth_pb2.LoginResponse(tokens=tokens_to_proto(tokens), user=user_to_proto(user))

    async def RefreshToken(self, request: auth_pb2.RefreshTokenRequest, context: Ctx) -> auth_pb2.RefreshTokenResponse:
        tokens = await self._auth.refresh(request.refresh_token)
        return auth_pb2.RefreshTokenResponse(tokens=tokens_to_proto(tokens))

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Ctx) -> auth_pb2.LogoutResponse:
        await self._auth.logout(require_caller(), request.refresh_token, request.all_sessions)
        return auth_pb2.LogoutResponse()

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: Ctx
    ) -> auth_pb2.GetCurrentUserResponse:
        user = await self._auth.get_user(require_caller())
        return auth_pb2.GetCurrentUserResponse(user=user_to_proto(user))

    async def UpdateProfile(
        self, request: auth_pb2.UpdateProfileRequest, context: Ctx
    ) -> auth_pb2.UpdateProfileResponse:
        user = await self._auth.update_profile(
            require_caller(), request.user.display_name, list(request.update_mask.paths)
        )
        return auth_pb2.UpdateProfileResponse(user=user_to_proto(user))

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Ctx
    ) -> auth_pb2.ChangePasswordResponse:
        await self._auth.change_password(require_caller(), request.old_password, request.new_password)
        return auth_pb2.ChangePasswordResponse()

    async def RequestPasswordReset(
        self, request: auth_pb2.RequestPasswordResetRequest, context: Ctx
    ) -> auth_pb2.RequestPasswordResetResponse:
        await self._auth.request_password_reset(request.email)
        return auth_pb2.RequestPasswordResetResponse()

    async def ResetPassword(
        self, request: auth_pb2.ResetPasswordRequest, context: Ctx
    ) -> auth_pb2.ResetPasswordResponse:
        await self._auth.reset_password(request.token, request.new_password)
        return auth_pb2.ResetPasswordResponse()

    async def VerifyEmail(self, request: auth_pb2.VerifyEmailRequest, context: Ctx) -> auth_pb2.VerifyEmailResponse:
        user = await self._auth.verify_email(request.token)
        return auth_pb2.VerifyEmailResponse(user=user_to_proto(user))

    async def ResendVerificationEmail(
        self, request: auth_pb2.ResendVerificationEmailRequest, context: Ctx
    ) -> auth_pb2.ResendVerificationEmailResponse:
        await self._auth.resend_verification_email(require_caller())
        return auth_pb2.ResendVerificationEmailResponse()

    async def DeleteAccount(
        self, request: auth_pb2.DeleteAccountRequest, context: Ctx
    ) -> auth_pb2.DeleteAccountResponse:
        await self._auth.delete_account(require_caller(), request.password)
        return auth_pb2.DeleteAccountResponse()

    async def JoinWaitlist(self, request: auth_pb2.JoinWaitlistRequest, context: Ctx) -> auth_pb2.JoinWaitlistResponse:
        position = await self._auth.join_waitlist(request.email, request.note)
        return auth_pb2.JoinWaitlistResponse(position=position)
