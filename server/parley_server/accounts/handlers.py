"""parley.auth.v1.AuthService and parley.api_key.v1 handlers: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from parley.api_key.v1 import api_key_pb2 as keys_pb
from parley.api_key.v1 import api_key_pb2_grpc
from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from parley_server.accounts.api_keys import ApiKeyService
from parley_server.accounts.auth_service import AuthService
from parley_server.accounts.convert import (
    api_key_to_proto,
    scopes_from_proto,
    service_account_to_proto,
    tokens_to_proto,
    user_to_proto,
)
from parley_server.accounts.service_accounts import ServiceAccountService
from parley_server.common.caller import require_caller
from parley_server.common.convert import from_timestamp
from parley_server.common.handlers import Ctx, client_address


class AuthHandlers(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    async def Register(self, request: auth_pb2.RegisterRequest, context: Ctx) -> auth_pb2.RegisterResponse:
        user = await self._auth.register(request.email, request.password, request.display_name, request.invite_code)
        return auth_pb2.RegisterResponse(user=user_to_proto(user))

    async def Login(self, request: auth_pb2.LoginRequest, context: Ctx) -> auth_pb2.LoginResponse:
        tokens, user = await self._auth.login(request.email, request.password, client_address(context))
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


class ApiKeyHandlers(api_key_pb2_grpc.ApiKeyServiceServicer):
    def __init__(self, keys: ApiKeyService) -> None:
        self._keys = keys

    async def CreateApiKey(self, request: keys_pb.CreateApiKeyRequest, context: Ctx) -> keys_pb.CreateApiKeyResponse:
        key, secret = await self._keys.create_own(
            require_caller(),
            request.api_key.name,
            scopes_from_proto(request.api_key.scopes),
            from_timestamp(request.api_key, "expire_time"),
            request.api_key.certificate_identity,
        )
        return keys_pb.CreateApiKeyResponse(api_key=api_key_to_proto(key), secret=secret)

    async def ListApiKeys(self, request: keys_pb.ListApiKeysRequest, context: Ctx) -> keys_pb.ListApiKeysResponse:
        page = await self._keys.list_keys(
            require_caller().user_id, request.page_size, request.page_token, method="ListApiKeys"
        )
        return keys_pb.ListApiKeysResponse(
            api_keys=[api_key_to_proto(key) for key in page.items], next_page_token=page.next_page_token
        )

    async def RevokeApiKey(self, request: keys_pb.RevokeApiKeyRequest, context: Ctx) -> keys_pb.RevokeApiKeyResponse:
        key = await self._keys.revoke_own(require_caller(), request.api_key_id)
        return keys_pb.RevokeApiKeyResponse(api_key=api_key_to_proto(key))


class ServiceAccountHandlers(api_key_pb2_grpc.ServiceAccountServiceServicer):
    def __init__(self, accounts: ServiceAccountService) -> None:
        self._accounts = accounts

    async def CreateServiceAccount(
        self, request: keys_pb.CreateServiceAccountRequest, context: Ctx
    ) -> keys_pb.CreateServiceAccountResponse:
        account = await self._accounts.create(request.service_account.display_name)
        return keys_pb.CreateServiceAccountResponse(service_account=service_account_to_proto(account))

    async def ListServiceAccounts(
        self, request: keys_pb.ListServiceAccountsRequest, context: Ctx
    ) -> keys_pb.ListServiceAccountsResponse:
        page = await self._accounts.list_accounts(request.page_size, request.page_token)
        return keys_pb.ListServiceAccountsResponse(
            service_accounts=[service_account_to_proto(account) for account in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteServiceAccount(
        self, request: keys_pb.DeleteServiceAccountRequest, context: Ctx
    ) -> keys_pb.DeleteServiceAccountResponse:
        await self._accounts.delete(request.service_account_id)
        return keys_pb.DeleteServiceAccountResponse()

    async def CreateServiceAccountKey(
        self, request: keys_pb.CreateServiceAccountKeyRequest, context: Ctx
    ) -> keys_pb.CreateServiceAccountKeyResponse:
        key, secret = await self._accounts.create_key(
            request.service_account_id,
            request.api_key.name,
            scopes_from_proto(request.api_key.scopes),
            from_timestamp(request.api_key, "expire_time"),
            request.api_key.certificate_identity,
        )
        return keys_pb.CreateServiceAccountKeyResponse(api_key=api_key_to_proto(key), secret=secret)

    async def ListServiceAccountKeys(
        self, request: keys_pb.ListServiceAccountKeysRequest, context: Ctx
    ) -> keys_pb.ListServiceAccountKeysResponse:
        page = await self._accounts.list_keys(request.service_account_id, request.page_size, request.page_token)
        return keys_pb.ListServiceAccountKeysResponse(
            api_keys=[api_key_to_proto(key) for key in page.items], next_page_token=page.next_page_token
        )

    async def RevokeServiceAccountKey(
        self, request: keys_pb.RevokeServiceAccountKeyRequest, context: Ctx
    ) -> keys_pb.RevokeServiceAccountKeyResponse:
        key = await self._accounts.revoke_key(request.service_account_id, request.api_key_id)
        return keys_pb.RevokeServiceAccountKeyResponse(api_key=api_key_to_proto(key))
