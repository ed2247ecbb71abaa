"""Provider clients, built once per agent configuration and reused.

Building an OpenAI client opens a connection pool; doing that per message
would waste connections and TLS handshakes, so each process keeps one client
per agent and rebuilds it only when the agent's `version` changes (every
UpdateAgent bumps it). Comparing versions, rather than relying only on
`forget`, also picks up updates made through another server replica.

A replaced client is retired, not cut off: generations already streaming from
it finish first, then its connections are closed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from parley_server.agents.providers.base import ChatProvider, ChatTurn, ProviderError, ProviderEvent
from parley_server.agents.providers.echo_provider import EchoProvider
from parley_server.agents.providers.openai_provider import OpenAIProvider
from parley_server.db.models import Agent, AgentProvider
from parley_server.settings import environment_variable

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


class PooledProvider:
    """A provider shared by every generation of one agent version.

    It counts the streams in flight so that retiring it (aclose) closes the
    underlying client only once the last of them has ended.
    """

    def __init__(self, inner: ChatProvider, version: int) -> None:
        self.name = inner.name
        self.version = version
        self._inner = inner
        self._streams = 0
        self._retired = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the underlying client has been closed."""
        return self._closed

    async def stream(
        self, turns: Sequence[ChatTurn], *, max_output_tokens: int, temperature: float
    ) -> AsyncIterator[ProviderEvent]:
        if self._closed:  # retired between provider_for and the first event
            raise ProviderError("the agent was reconfigured; send the message again")
        self._streams += 1
        try:
            async for event in self._inner.stream(turns, max_output_tokens=max_output_tokens, temperature=temperature):
                yield event
        finally:
            self._streams -= 1
            await self._close_if_idle()

    async def aclose(self) -> None:
        """Retire: close now if idle, else when the last stream ends."""
        self._retired = True
        await self._close_if_idle()

    async def _close_if_idle(self) -> None:
        if self._retired and self._streams == 0 and not self._closed:
            self._closed = True
            await self._inner.aclose()


class AgentRegistry:
    def __init__(
        self, *, echo_delay_seconds: float, provider_timeout_seconds: float, tracer: Tracer | None = None
    ) -> None:
        """tracer: for the model providers' spans; None when tracing is off."""
        self._echo_delay = echo_delay_seconds
        self._timeout = provider_timeout_seconds
        self._tracer = tracer
        self._pool: dict[uuid.UUID, PooledProvider] = {}

    async def provider_for(self, agent: Agent) -> PooledProvider:
        """The shared provider of agent's configuration, built on first use.

        A row older than the pooled client (read before a concurrent update)
        gets the newer client: the newest configuration wins.
        """
        current = self._pool.get(agent.id)
        if current is not None and current.version >= agent.version:
            return current
        fresh = PooledProvider(self._build(agent), agent.version)
        self._pool[agent.id] = fresh
        if current is not None:
            await current.aclose()
        return fresh

    async def forget(self, agent_id: uuid.UUID) -> None:
        """Retire the agent's client (after an update or delete); the next use rebuilds."""
        pooled = self._pool.pop(agent_id, None)
        if pooled is not None:
            await pooled.aclose()

    async def aclose(self) -> None:
        """Retire every client (server shutdown)."""
        pool, self._pool = self._pool, {}
        for pooled in pool.values():
            await pooled.aclose()

    def _build(self, agent: Agent) -> ChatProvider:
        if agent.provider is AgentProvider.ECHO:
            return EchoProvider(self._echo_delay)
        return OpenAIProvider(
            base_url=agent.base_url,
            model=agent.model,
            # Only the variable's name is stored; the key is read when the client is built.
            api_key=environment_variable(agent.api_key_env) if agent.api_key_env else "",
            timeout_seconds=self._timeout,
            tracer=self._tracer,
        )
