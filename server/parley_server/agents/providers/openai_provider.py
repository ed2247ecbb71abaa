"""Any OpenAI-compatible Chat Completions endpoint: OpenAI, vLLM, Ollama, llama.cpp.

One provider holds one `openai.AsyncOpenAI` client, i.e. one HTTP connection
pool, and is shared by every generation of an agent configuration (see
agents/registry.py). The SDK's own retries are off: a retried generation would
replay text the user has already seen, so the chat layer decides about retries.

Every failure becomes a ProviderError whose reason a user may read: it names
what went wrong (rejected key, rate limit, unreachable, dropped connection),
never the endpoint URL, the key or the vendor's raw message.

With tracing on (common/tracing.py) each call is a CLIENT span named and
described as OpenTelemetry's GenAI conventions say (`chat <model>`), and its
W3C `traceparent` header makes the provider's own spans its children.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from parley_server.agents.providers.base import ChatTurn, GeneratedText, ProviderError, ProviderEvent, Usage

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers (Ollama, llama.cpp, vLLM) accept any key, but the SDK wants one.
PLACEHOLDER_API_KEY = "not-needed"
W3C_TRACE_CONTEXT = TraceContextTextMapPropagator()
LOST = "the connection to the model provider was lost"

_STATUS_REASONS = {
    400: "the model provider rejected the request",
    401: "the model provider rejected the API key",
    403: "the model provider refused access to the model",
    404: "the model provider does not know this model or endpoint",
    408: "the model provider did not answer in time",
    413: "the conversation is too long for the model",
    422: "the model provider rejected the request",
    429: "the model provider is rate limiting requests; try again later",
}


def _status_reason(status: int) -> str:
    if status in _STATUS_REASONS:
        reason = _STATUS_REASONS[status]
    elif status >= 500:
        reason = "the model provider had an internal error"
    else:
        reason = "the model provider refused the request"
    return f"{reason} (HTTP {status})"


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, *, base_url: str, model: str, api_key: str, timeout_seconds: float, tracer: trace.Tracer | None = None
    ) -> None:
        """base_url empty means OpenAI itself; api_key empty means a keyless local server;
        tracer None means tracing is off."""
        self._model = model
        self._client = openai.AsyncOpenAI(
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=api_key or PLACEHOLDER_API_KEY,
            timeout=timeout_seconds,
            max_retries=0,
        )
        self._tracer = tracer
        # The span's attributes, in the GenAI semantic conventions' names (no key, no path).
        endpoint = urlsplit(base_url or DEFAULT_BASE_URL)
        self._span_attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "server.address": endpoint.hostname or "",
            "server.port": endpoint.port or (443 if endpoint.scheme == "https" else 80),
        }

    def stream(
        self, turns: Sequence[ChatTurn], *, max_output_tokens: int, temperature: float
    ) -> AsyncIterator[ProviderEvent]:
        """Stream a completion (see _events), in a span of its own when tracing is on
        (off, the events come straight from _events: no generator in between)."""
        if self._tracer is None:
            return self._events(turns, max_output_tokens, temperature, {})
        return self._traced(self._tracer, turns, max_output_tokens, temperature)

    async def _traced(
        self, tracer: trace.Tracer, turns: Sequence[ChatTurn], max_output_tokens: int, temperature: float
    ) -> AsyncIterator[ProviderEvent]:
        # Not made current: its lifetime spans this generator's yields, in
        # between which the caller's own work runs. Its context reaches the
        # provider in the request's traceparent header.
        span = tracer.start_span(f"chat {self._model}", kind=trace.SpanKind.CLIENT, attributes=self._span_attributes)
        headers: dict[str, str] = {}
        W3C_TRACE_CONTEXT.inject(headers, context=trace.set_span_in_context(span))
        try:
            async for event in self._events(turns, max_output_tokens, temperature, headers):
                if isinstance(event, Usage):
                    span.set_attribute("gen_ai.usage.input_tokens", event.prompt_tokens)
                    span.set_attribute("gen_ai.usage.output_tokens", event.completion_tokens)
                yield event
        except ProviderError as exc:
            span.set_status(trace.StatusCode.ERROR, exc.reason)
            span.set_attribute("error.type", type(exc.__cause__ or exc).__name__)
            raise
        finally:
            span.end()

    async def _events(
        self, turns: Sequence[ChatTurn], max_output_tokens: int, temperature: float, headers: Mapping[str, str]
    ) -> AsyncIterator[ProviderEvent]:
        """Stream a completion: a GeneratedText per content chunk, then one Usage.

        The answer must end with a finish_reason; a body that just stops (the
        server or a proxy dropped the connection cleanly) is a failure, not a
        shorter answer. Usage is reported once, after the text, from the last
        chunk that carried it (some servers repeat it). max_output_tokens 0
        leaves the length to the server.
        """
        options: dict[str, Any] = {"max_tokens": max_output_tokens} if max_output_tokens > 0 else {}
        connected = finished = False
        usage: Usage | None = None
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=[_message(turn) for turn in turns],
                temperature=temperature,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=headers,
                **options,
            )
            connected = True
            async with response:
                async for chunk in response:
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.delta is not None and choice.delta.content:
                        yield GeneratedText(choice.delta.content)
                    finished = finished or choice.finish_reason is not None
        except openai.APIStatusError as exc:
            raise ProviderError(_status_reason(exc.status_code)) from exc
        except openai.APITimeoutError as exc:  # before APIConnectionError: it is a subclass
            raise ProviderError("the model provider did not answer in time") from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(LOST if connected else "could not reach the model provider") from exc
        except openai.OpenAIError as exc:  # an error event inside the stream, and the like
            raise ProviderError("the model provider reported an error") from exc
        except ValueError as exc:  # a chunk that is not JSON
            raise ProviderError("the model provider sent a malformed answer") from exc
        if not finished:
            raise ProviderError(LOST)
        if usage is not None:
            yield usage

    async def aclose(self) -> None:
        await self._client.close()


def _message(turn: ChatTurn) -> ChatCompletionMessageParam:
    # One TypedDict per role: mypy cannot pick one for a role that is any of three.
    return {"role": turn.role, "content": turn.content}  # type: ignore[return-value, misc]
