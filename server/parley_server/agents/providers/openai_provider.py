"""Any OpenAI-compatible Chat Completions endpoint: OpenAI, vLLM, Ollama, llama.cpp.

One provider holds one `openai.AsyncOpenAI` client, i.e. one HTTP connection
pool, and is shared by every generation of an agent configuration (see
agents/registry.py). The SDK's own retries are off: a retried generation would
replay text the user has already seen, so the chat layer decides about retries.

Every failure becomes a ProviderError whose reason a user may read: it names
what went wrong (rejected key, rate limit, unreachable, dropped connection),
never the endpoint URL, the key or the vendor's raw message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from parley_server.agents.providers.base import ChatTurn, GeneratedText, ProviderError, ProviderEvent, Usage

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers (Ollama, llama.cpp, vLLM) accept any key, but the SDK wants one.
PLACEHOLDER_API_KEY = "not-needed"
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

    def __init__(self, *, base_url: str, model: str, api_key: str, timeout_seconds: float) -> None:
        """base_url empty means OpenAI itself; api_key empty means a keyless local server."""
        self._model = model
        self._client = openai.AsyncOpenAI(
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=api_key or PLACEHOLDER_API_KEY,
            timeout=timeout_seconds,
            max_retries=0,
        )

    async def stream(
        self, turns: Sequence[ChatTurn], *, max_output_tokens: int, temperature: float
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
