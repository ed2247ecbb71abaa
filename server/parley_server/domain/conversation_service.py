"""ConversationService rules: conversations and their messages.

SKELETON: to be implemented (owner: conversations helper).
"""

from __future__ import annotations

from parley_server.db.database import Database
from parley_server.domain.agent_access_service import AgentAccessService
from parley_server.domain.agent_registry import AgentRegistry
from parley_server.domain.pagination import Paginator


class ConversationService:
    def __init__(
        self, database: Database, paginator: Paginator, access: AgentAccessService, registry: AgentRegistry
    ) -> None:
        self._db = database
        self._paginator = paginator
        self._access = access
        self._registry = registry
