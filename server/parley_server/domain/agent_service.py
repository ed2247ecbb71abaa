"""AgentService rules: the agent catalogue and its administration.

SKELETON: to be implemented (owner: agents helper).
"""

from __future__ import annotations

from parley_server.db.database import Database
from parley_server.domain.agent_registry import AgentRegistry
from parley_server.domain.pagination import Paginator


class AgentService:
    def __init__(self, database: Database, paginator: Paginator, registry: AgentRegistry) -> None:
        self._db = database
        self._paginator = paginator
        self._registry = registry
