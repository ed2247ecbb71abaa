"""Provider clients, built once per agent configuration and reused.

SKELETON: to be implemented (owner: agents helper).
"""

from __future__ import annotations


class AgentRegistry:
    def __init__(self) -> None:
        pass

    async def aclose(self) -> None:
        return None
