"""The metrics of one generation (a model answer), recorded as it runs.

Running generations are a gauge for as long as the `GenerationWatch` is
entered; the first text gives the time to first token; the end gives the
outcome, the completion tokens, and the speed from the first text to the end
(which leaves out the model's thinking before it, already in the first
measure).
"""

from __future__ import annotations

import time
from types import TracebackType

from parley_server.metrics.definitions import (
    GENERATION_FIRST_TOKEN_SECONDS,
    GENERATION_TOKENS,
    GENERATION_TOKENS_PER_SECOND,
    GENERATIONS,
    GENERATIONS_RUNNING,
)


class GenerationWatch:
    """Entered while a generation runs; told of its text and of its end."""

    __slots__ = ("_first", "_provider", "_started")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._started = time.perf_counter()
        self._first: float | None = None

    def __enter__(self) -> GenerationWatch:
        GENERATIONS_RUNNING.labels(self._provider).inc()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        GENERATIONS_RUNNING.labels(self._provider).dec()

    def text(self) -> None:
        """The model produced text (only the first call records anything)."""
        if self._first is None:
            self._first = time.perf_counter()
            GENERATION_FIRST_TOKEN_SECONDS.labels(self._provider).observe(self._first - self._started)

    def ended(self, outcome: str, completion_tokens: int) -> None:
        """The generation ended in `outcome` (the message's final state) after `completion_tokens`."""
        GENERATIONS.labels(self._provider, outcome).inc()
        if not completion_tokens:
            return
        GENERATION_TOKENS.labels(self._provider).inc(completion_tokens)
        if self._first is not None:
            seconds = time.perf_counter() - self._first
            if seconds > 0:
                GENERATION_TOKENS_PER_SECOND.labels(self._provider).observe(completion_tokens / seconds)
