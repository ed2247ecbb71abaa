"""Who may call each RPC: the single table the auth interceptor enforces.

Every method the server exposes must be listed; a method missing from the
table is refused (fail closed), and a test checks the table against the proto
descriptors so a new RPC cannot ship without a decision here.
"""

from __future__ import annotations

import enum


class Access(enum.Enum):
    # No token needed.
    PUBLIC = "public"
    # Any logged-in account that is not locked out, even before email
    # verification: it must be able to see itself, resend the verification
    # email, log out and delete itself.
    AUTHENTICATED = "authenticated"
    # An ACTIVE account: email verified, not waitlisted or disabled.
    USER = "user"
    # Role ADMIN.
    ADMIN = "admin"


def _service(full_name: str, **methods: Access) -> dict[str, Access]:
    return {f"/{full_name}/{method}": access for method, access in methods.items()}


P, AUTH, U, A = Access.PUBLIC, Access.AUTHENTICATED, Access.USER, Access.ADMIN

POLICY: dict[str, Access] = {
    **_service(
        "parley.auth.v1.AuthService",
        Register=P,
        Login=P,
        RefreshToken=P,
        Logout=AUTH,
        GetCurrentUser=AUTH,
        UpdateProfile=AUTH,
        ChangePassword=AUTH,
        RequestPasswordReset=P,
        ResetPassword=P,
        VerifyEmail=P,
        ResendVerificationEmail=AUTH,
        DeleteAccount=AUTH,
        JoinWaitlist=P,
    ),
    **_service(
        "parley.conversation.v1.ConversationService",
        CreateConversation=U,
        GetConversation=U,
        ListConversations=U,
        GetOrCreateFreshConversation=U,
        UpdateConversation=U,
        DeleteConversation=U,
        CreateMessage=U,
        ListMessages=U,
        GetMessagesForAgent=U,
        ClearMessages=U,
        GenerateTitle=U,
        CleanupEmptyConversations=U,
    ),
    **_service(
        "parley.agent_access.v1.AgentAccessService",
        CheckAgentAccess=U,
        ListAccessibleAgents=U,
        GetUsage=U,
        GrantAgentAccess=A,
        RevokeAgentAccess=A,
        ListAgentGrants=A,
    ),
    **_service(
        "parley.agent.v1.AgentService",
        ListAgents=U,
        GetAgent=U,
        CreateAgent=A,
        UpdateAgent=A,
        DeleteAgent=A,
    ),
    **_service(
        "parley.admin.v1.AdminService",
        ListUsers=A,
        GetUser=A,
        UpdateUser=A,
        DeleteUser=A,
        ListWaitlist=A,
        ApproveWaitlistEntries=A,
        GetStats=A,
        GetSystemHealth=A,
        CleanupEmptyConversations=A,
    ),
    **_service(
        "parley.chat.v1.ChatService",
        SendMessage=U,
        ResumeStream=U,
        CancelGeneration=U,
        WatchConversation=U,
    ),
    **_service("grpc.health.v1.Health", Check=P, Watch=P, List=P),
    **_service("grpc.reflection.v1.ServerReflection", ServerReflectionInfo=P),
    **_service("grpc.reflection.v1alpha.ServerReflection", ServerReflectionInfo=P),
}


def access_for(method: str) -> Access | None:
    """The access level of a full method name, or None when it is not in the table."""
    return POLICY.get(method)
