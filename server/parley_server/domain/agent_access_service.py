"""AgentAccessService rules: who may use which agent, grants, quotas, usage.

SKELETON: to be implemented (owner: agents helper).
"""

from __future__ import annotations

from parley_server.db.database import Database
from parley_server.domain.pagination import Paginator


class AgentAccessService:
    def __init__(self, database: Database, paginator: Paginator) -> None:
        self._db = database
        self._paginator = paginator
