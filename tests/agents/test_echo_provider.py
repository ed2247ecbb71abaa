"""The offline echo provider: deterministic streamed replies, usage, the /fail hook."""

from __future__ import annotations

import time

import pytest

from parley_server.agents.providers.base import ChatTurn, GeneratedText, ProviderError, Usage, complete_text
from parley_server.agents.providers.echo_provider import EchoProvider
from parley_server.settings import Settings

HISTORY = [
    ChatTurn("system", "You are terse."),
    ChatTurn("user", "first question"),
    ChatTurn("assistant", "Echo: first question"),
    ChatTurn("user", "  hello   big world "),
]


async def events(provider: EchoProvider, turns: list[ChatTurn], max_output_tokens: int = 0) -> list[object]:
    return [e async for e in provider.stream(turns, max_output_tokens=max_output_tokens, temperature=0.7)]


async def test_echoes_the_last_user_turn_word_by_word_then_reports_usage() -> None:
    result = await events(EchoProvider(0), HISTORY)
    assert result == [
        GeneratedText("Echo: "),
        GeneratedText("hello "),
        GeneratedText("big "),
        GeneratedText("world"),
        # 3 + 2 + 3 + 3 words in the turns; 4 words emitted.
        Usage(prompt_tokens=11, completion_tokens=4),
    ]


async def test_reply_is_deterministic_and_capped_by_max_output_tokens() -> None:
    provider = EchoProvider(0)
    assert await events(provider, HISTORY, 2) == [GeneratedText("Echo: "), GeneratedText("hello"), Usage(11, 2)]
    assert await complete_text(provider, HISTORY, 0, 1.5) == "Echo: hello big world"
    assert await complete_text(provider, HISTORY, 0, 0.0) == "Echo: hello big world"


async def test_without_a_user_turn_replies_with_the_prefix_only() -> None:
    assert await events(EchoProvider(0), [ChatTurn("system", "hi there")]) == [GeneratedText("Echo:"), Usage(2, 1)]


async def test_fail_command_emits_a_few_words_then_fails() -> None:
    received: list[object] = []
    with pytest.raises(ProviderError) as error:
        async for event in EchoProvider(0).stream(
            [ChatTurn("user", "/fail please now and later")], max_output_tokens=0, temperature=0
        ):
            received.append(event)
    assert error.value.reason == "echo provider asked to fail"
    assert received == [GeneratedText("Echo: "), GeneratedText("/fail "), GeneratedText("please ")]
    with pytest.raises(ProviderError):
        await complete_text(EchoProvider(0), [ChatTurn("user", "/fail")], 0, 0)


async def test_words_are_paced_by_the_configured_delay() -> None:
    started = time.monotonic()
    await events(EchoProvider(0.005), [ChatTurn("user", "one two three four five")])
    # Six words at 5 ms each.
    assert time.monotonic() - started >= 0.03


def test_delay_setting_defaults_to_30_ms_and_reads_the_environment() -> None:
    assert Settings.from_env({}).echo_delay_ms == 30
    assert Settings.from_env({"PARLEY_ECHO_DELAY_MS": "0"}).echo_delay_ms == 0
