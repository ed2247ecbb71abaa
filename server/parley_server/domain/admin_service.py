"""AdminService rules: user management, waitlist, statistics, system health.

SKELETON: to be implemented (owner: admin helper).
"""

from __future__ import annotations

from parley_server.db.database import Database
from parley_server.domain.auth_service import AuthService
from parley_server.domain.conversation_service import ConversationService
from parley_server.domain.pagination import Paginator
from parley_server.domain.session_service import SessionService


class AdminService:
    def __init__(
        self,
        database: Database,
        paginator: Paginator,
        sessions: SessionService,
        auth: AuthService,
        conversations: ConversationService,
    ) -> None:
        self._db = database
        self._paginator = paginator
        self._sessions = sessions
        self._auth = auth
        self._conversations = conversations
