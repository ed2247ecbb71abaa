"""The OpenAI-compatible provider against a local fake server speaking the real SSE format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from parley_server.agents.providers.base import ChatTurn, GeneratedText, ProviderError, ProviderEvent, Usage
from parley_server.agents.providers.openai_provider import OpenAIProvider
from tests.helpers.fake_openai import FakeOpenAI

SECRET_KEY = "sk-test-secret-123"
TURNS = [ChatTurn("system", "Be kind."), ChatTurn("user", "say hello")]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def provider_for(fake: FakeOpenAI, *, api_key: str = SECRET_KEY, timeout: float = 5.0) -> OpenAIProvider:
    return OpenAIProvider(base_url=fake.base_url, model="fake-model", api_key=api_key, timeout_seconds=timeout)


async def stream_turns(provider: OpenAIProvider, max_output_tokens: int = 64) -> list[ProviderEvent]:
    """Every event of the provider's answer to TURNS; the provider is closed afterwards."""
    try:
        return [e async for e in provider.stream(TURNS, max_output_tokens=max_output_tokens, temperature=0.3)]
    finally:
        await provider.aclose()


async def failure(provider: OpenAIProvider) -> tuple[list[ProviderEvent], str]:
    """The events received before the stream failed, and the failure's reason."""
    received: list[ProviderEvent] = []
    with pytest.raises(ProviderError) as error:
        try:
            async for event in provider.stream(TURNS, max_output_tokens=64, temperature=0.3):
                received.append(event)
        finally:
            await provider.aclose()
    reason = error.value.reason
    assert SECRET_KEY not in reason and "127.0.0.1" not in reason and "http" not in reason
    return received, reason


async def test_streams_text_deltas_then_usage(fake: FakeOpenAI) -> None:
    events = await stream_turns(provider_for(fake))
    assert events == [
        GeneratedText("Hello "),
        GeneratedText("from "),
        GeneratedText("the "),
        GeneratedText("fake"),
        Usage(prompt_tokens=4, completion_tokens=4),
    ]
    request = fake.requests[0]
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert request.body == {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "say hello"}],
        "temperature": 0.3,
        "max_tokens": 64,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_without_key_or_token_cap(fake: FakeOpenAI) -> None:
    await stream_turns(provider_for(fake, api_key=""), max_output_tokens=0)
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"
    assert "max_tokens" not in fake.requests[0].body


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "the model provider rejected the API key (HTTP 401)"),
        (429, "the model provider is rate limiting requests; try again later (HTTP 429)"),
        (500, "the model provider had an internal error (HTTP 500)"),
        (404, "the model provider does not know this model or endpoint (HTTP 404)"),
    ],
)
async def test_error_status_becomes_a_user_safe_reason(fake: FakeOpenAI, status: int, expected: str) -> None:
    fake.status = status
    received, reason = await failure(provider_for(fake))
    assert received == []
    assert reason == expected
    assert len(fake.requests) == 1  # the SDK's retries are off


async def test_slow_tokens_arrive_one_by_one(fake: FakeOpenAI) -> None:
    fake.token_delay = 0.1
    provider = provider_for(fake)
    arrivals: list[float] = []
    started = time.monotonic()
    async for event in provider.stream(TURNS, max_output_tokens=64, temperature=0.3):
        if isinstance(event, GeneratedText):
            arrivals.append(time.monotonic() - started)
    await provider.aclose()
    assert len(arrivals) == 4
    # Not buffered until the end: each delta comes about one token delay after the previous one.
    assert all(later - earlier >= 0.05 for earlier, later in zip(arrivals, arrivals[1:], strict=False))


async def test_a_stalled_provider_times_out(fake: FakeOpenAI) -> None:
    fake.token_delay = 2.0
    received, reason = await failure(provider_for(fake, timeout=0.3))
    assert received == []
    assert reason == "the model provider did not answer in time"


async def test_connection_dropped_mid_stream(fake: FakeOpenAI) -> None:
    fake.drop_after = 2
    received, reason = await failure(provider_for(fake))
    assert received == [GeneratedText("Hello "), GeneratedText("from ")]
    assert reason == "the connection to the model provider was lost"


async def test_body_ending_without_finish_is_a_lost_connection(fake: FakeOpenAI) -> None:
    fake.truncate = True
    received, reason = await failure(provider_for(fake))
    assert [e for e in received if isinstance(e, Usage)] == []
    assert reason == "the connection to the model provider was lost"


async def test_error_event_in_the_stream(fake: FakeOpenAI) -> None:
    fake.error_event = True
    received, reason = await failure(provider_for(fake))
    assert len(received) == 4
    assert reason == "the model provider reported an error"


async def test_unreachable_endpoint() -> None:
    async with FakeOpenAI() as fake:
        base_url = fake.base_url
    # The fake is gone: nothing listens on its port any more.
    provider = OpenAIProvider(base_url=base_url, model="m", api_key=SECRET_KEY, timeout_seconds=2)
    _, reason = await failure(provider)
    assert reason == "could not reach the model provider"


async def test_stopping_early_hangs_up_on_the_server(fake: FakeOpenAI) -> None:
    fake.token_delay = 0.05
    fake.words = ["word"] * 50
    provider = provider_for(fake)
    stream = provider.stream(TURNS, max_output_tokens=64, temperature=0.3)
    assert await anext(stream) == GeneratedText("word ")
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(fake.disconnected.wait(), timeout=2)
    await provider.aclose()


async def test_aclose_closes_the_client(fake: FakeOpenAI) -> None:
    provider = provider_for(fake)
    await stream_turns(provider)
    with pytest.raises(RuntimeError, match="closed"):
        async for _ in provider.stream(TURNS, max_output_tokens=1, temperature=0):
            pass
