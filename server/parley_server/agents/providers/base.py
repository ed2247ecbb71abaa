"""The interface every model provider implements, and its event types.

A provider turns a conversation history into a stream of events: pieces of
generated text as they arrive, then (usually) one usage report. Errors are raised as
ProviderError with a short reason a user may see; nothing vendor-specific
leaks past this module's types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

TurnRole = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatTurn:
    role: TurnRole
    content: str


@dataclass(frozen=True)
class GeneratedText:
    """The next text a provider produced. It has no offset yet: the generation
    appends it to the message, and only then is it a TextDelta (chat.updates)."""

    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


ProviderEvent = GeneratedText | Usage


class ProviderError(Exception):
    """The provider failed; `reason` is safe to show to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChatProvider(Protocol):
    # What kind of provider it is ("echo", "openai"): the `provider` label of generation metrics.
    name: str

    def stream(
        self, turns: Sequence[ChatTurn], *, max_output_tokens: int, temperature: float
    ) -> AsyncIterator[ProviderEvent]:
        """Generate a reply to turns, as events."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections (called when the agent changes or goes away)."""
        ...


async def complete_text(
    provider: ChatProvider, turns: Sequence[ChatTurn], max_output_tokens: int, temperature: float
) -> str:
    """The whole reply to turns as one string, for short internal uses (titles)
    where nobody watches the text arrive; ProviderError propagates."""
    parts = [
        event.text
        async for event in provider.stream(turns, max_output_tokens=max_output_tokens, temperature=temperature)
        if isinstance(event, GeneratedText)
    ]
    return "".join(parts)
