"""The built-in offline provider: answers by echoing the last user message.

It exists so that Parley works end to end with no model at all (a fresh
install, CI, demos): replies are deterministic, streamed word by word with a
small delay so they look and time like a real model's, and report usage.

Documented convention, the only special input it knows: a last user message
that starts with `/fail` makes it emit a few words and then raise
ProviderError("echo provider asked to fail"), so the failure path of a
generation (partial text kept, message FAILED) can be exercised end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from parley_server.agents.providers.base import ChatTurn, GeneratedText, ProviderError, ProviderEvent, Usage

FAIL_COMMAND = "/fail"
FAIL_REASON = "echo provider asked to fail"
# Words emitted before a `/fail` request fails: enough to have partial text.
WORDS_BEFORE_FAILURE = 3
PREFIX = "Echo:"


def _word_count(text: str) -> int:
    return len(text.split())


class EchoProvider:
    """Replies "Echo: <the last user message>"; one word is one token."""

    name = "echo"

    def __init__(self, delay_seconds: float) -> None:
        self._delay = delay_seconds

    async def stream(
        self, turns: Sequence[ChatTurn], *, max_output_tokens: int, temperature: float
    ) -> AsyncIterator[ProviderEvent]:
        """Yield the reply word by word (the separating space attached to each
        word but the last), then Usage. max_output_tokens caps the words
        (0 = no cap); temperature is ignored, the reply is deterministic."""
        user_text = next((turn.content for turn in reversed(turns) if turn.role == "user"), "")
        words = [PREFIX, *user_text.split()]
        if max_output_tokens > 0:
            words = words[:max_output_tokens]
        failing = user_text.lstrip().startswith(FAIL_COMMAND)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, word in enumerate(words):
            if failing and index == WORDS_BEFORE_FAILURE:
                break
            # Word k is due at start + (k+1) * delay: an absolute schedule, so
            # timer overshoot does not accumulate over a long reply. Sleeping
            # even for 0 s yields to the loop, so a cancel lands between words.
            await asyncio.sleep(max(0.0, started + (index + 1) * self._delay - loop.time()))
            yield GeneratedText(word if index == len(words) - 1 else word + " ")
        if failing:
            raise ProviderError(FAIL_REASON)
        yield Usage(prompt_tokens=sum(_word_count(turn.content) for turn in turns), completion_tokens=len(words))

    async def aclose(self) -> None:
        """Nothing to release: the echo provider holds no connections."""
