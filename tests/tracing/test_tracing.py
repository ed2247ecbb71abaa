"""Tracing, in memory: a replica of its own with tracing on (the SDK's
InMemorySpanExporter), on a real port, calling a fake model provider that
speaks the real wire format; the suite's shared server has tracing off."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    format_span_id,
    format_trace_id,
)

from parley.auth.v1 import auth_pb2
from parley.chat.v1 import chat_pb2
from parley_server.app import App
from parley_server.common.tracing import Tracing, rpc_sampler
from tests.helpers.accounts import Account
from tests.helpers.agents import create_model_agent
from tests.helpers.chat import collect, kinds
from tests.helpers.conversations import new_conversation
from tests.helpers.fake_openai import FakeOpenAI
from tests.helpers.in_process import second_server
from tests.helpers.stubs import Stubs

SEND_MESSAGE = "/parley.chat.v1.ChatService/SendMessage"
GET_CURRENT_USER = "/parley.auth.v1.AuthService/GetCurrentUser"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced(app: App, tmp_root: Path, database_url: str, exporter: InMemorySpanExporter) -> AsyncIterator[Stubs]:
    """A replica with tracing on (the suite's `app` has migrated the database before it)."""
    async with second_server(tmp_root, database_url, tracing=Tracing(SimpleSpanProcessor(exporter), "parley")) as other:
        yield other


@pytest.fixture
def spans(stubs: Stubs, exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The exporter, emptied (after `stubs` emptied the tables)."""
    exporter.clear()
    yield exporter


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(words=["Tides", "follow", "the", "moon"]) as server:
        yield server


async def model_conversation(traced: Stubs, fake: FakeOpenAI) -> tuple[Account, str]:
    """An active account and its conversation with an agent on the fake model provider."""
    await create_model_agent(traced, fake.base_url)
    account = await traced.active_account()
    return account, (await new_conversation(traced, account, slug="remote")).id


async def finished_trace(
    traced: Stubs, spans: InMemorySpanExporter, rpc: str
) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The (one) span of `rpc` and every span of its trace, once the generation it started has ended."""
    assert await traced.app.chat.generations.idle(timeout=30)
    rpc_spans = [span for span in spans.get_finished_spans() if span.name == rpc]
    assert len(rpc_spans) == 1, [span.name for span in spans.get_finished_spans()]
    root = rpc_spans[0]
    assert root.context is not None
    return root, [span for span in spans.get_finished_spans() if span.context.trace_id == root.context.trace_id]


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def is_sql(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    return span.kind is SpanKind.CLIENT and "postgresql" in (
        attributes.get("db.system"),
        attributes.get("db.system.name"),
    )


async def test_send_message_is_one_trace_from_the_rpc_to_sql_to_the_model_provider(
    traced: Stubs, spans: InMemorySpanExporter, fake: FakeOpenAI
) -> None:
    alice, conversation_id = await model_conversation(traced, fake)
    spans.clear()
    events = await collect(
        traced.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation_id, content="Why tides?"), metadata=alice.md
        )
    )
    assert kinds(events)[-1] == "completed"
    root, trace = await finished_trace(traced, spans, SEND_MESSAGE)
    assert root.kind is SpanKind.SERVER and root.parent is None
    by_id = {span.context.span_id: span for span in trace}
    # Every span of the trace hangs from the RPC's.
    assert all(ancestors(span, by_id)[-1:] == [SEND_MESSAGE] for span in trace if span is not root)
    sql = [span for span in trace if is_sql(span)]
    assert any(span.parent == root.context for span in sql), "the RPC's own statements are its children"
    # The model call: a child of the RPC (its generation outlives the RPC's handler, not its trace) ...
    [provider] = [span for span in trace if span.name == "chat fake-model"]
    assert provider.kind is SpanKind.CLIENT and provider.parent == root.context
    assert provider.attributes is not None
    assert provider.attributes["gen_ai.request.model"] == "fake-model"
    assert provider.attributes["gen_ai.usage.output_tokens"] == 4
    # ... whose context the provider received in the W3C header: its spans would be the call's children.
    assert len(fake.requests) == 1
    trace_id, span_id = format_trace_id(root.context.trace_id), format_span_id(provider.context.span_id)
    version, *ids, flags = fake.requests[0].headers["traceparent"].split("-")
    assert (version, ids) == ("00", [trace_id, span_id]) and int(flags, 16) & 1, "sampled"
    # The generation's end is written after the provider's last chunk, in the same trace.
    provider_end = provider.end_time
    assert provider_end is not None  # exported spans have ended
    assert any(span.start_time is not None and span.start_time >= provider_end for span in sql)


async def test_a_failing_provider_call_is_an_error_span(
    traced: Stubs, spans: InMemorySpanExporter, fake: FakeOpenAI
) -> None:
    alice, conversation_id = await model_conversation(traced, fake)
    fake.status = 500
    events = await collect(
        traced.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation_id, content="Why tides?"), metadata=alice.md
        )
    )
    assert kinds(events)[-1] == "failed"
    _, trace = await finished_trace(traced, spans, SEND_MESSAGE)
    [provider] = [span for span in trace if span.name == "chat fake-model"]
    assert provider.status.status_code is StatusCode.ERROR
    assert provider.status.description == "the model provider had an internal error (HTTP 500)"
    assert "traceparent" in fake.requests[0].headers


async def test_a_callers_trace_is_continued_and_named_in_the_rpc_log_line(
    traced: Stubs, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parley.rpc")
    alice = await traced.active_account()
    spans.clear()
    traceparent = ("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
    await traced.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(*alice.md, traceparent, ("x-request-id", "traced-1"))
    )
    root, trace = await finished_trace(traced, spans, GET_CURRENT_USER)
    assert format_trace_id(root.context.trace_id) == CALLER_TRACE
    assert root.parent is not None and root.parent.is_remote and format_span_id(root.parent.span_id) == CALLER_SPAN
    assert root.attributes is not None and root.attributes["rpc.method"] == "GetCurrentUser"
    [line] = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "parley.rpc" and "traced-1" in r.getMessage()
    ]
    assert line["trace_id"] == CALLER_TRACE


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-not-a-trace-01",  # malformed: ignored, a new trace starts
        f"00-{'0' * 32}-{CALLER_SPAN}-01",  # the all-zero trace id is invalid
    ],
)
async def test_an_unusable_traceparent_starts_a_new_trace(
    traced: Stubs, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture, traceparent: str
) -> None:
    caplog.set_level(logging.INFO, logger="parley.rpc")
    alice = await traced.active_account()
    spans.clear()
    await traced.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(*alice.md, ("traceparent", traceparent), ("x-request-id", "new-1"))
    )
    root, _ = await finished_trace(traced, spans, GET_CURRENT_USER)
    assert root.parent is None
    [line] = [
        json.loads(r.getMessage()) for r in caplog.records if "new-1" in r.getMessage() and r.name == "parley.rpc"
    ]
    assert line["trace_id"] == format_trace_id(root.context.trace_id)


async def test_a_caller_that_does_not_sample_gets_no_spans_but_its_trace_id_in_the_log(
    traced: Stubs, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parley.rpc")
    alice = await traced.active_account()
    spans.clear()
    traceparent = ("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-00")
    await traced.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(*alice.md, traceparent, ("x-request-id", "unsampled-1"))
    )
    assert spans.get_finished_spans() == ()
    [line] = [json.loads(r.getMessage()) for r in caplog.records if "unsampled-1" in r.getMessage()]
    assert line["trace_id"] == CALLER_TRACE


async def test_without_tracing_no_span_and_no_trace_id(
    traced: Stubs, stubs: Stubs, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """The suite's own server has tracing off: even with the SQL instrumentation in
    this process (the traced replica's), its calls make no span and log no trace id."""
    caplog.set_level(logging.INFO, logger="parley.rpc")
    assert stubs.app.tracing is None
    alice = await stubs.active_account()
    conversation_id = (await new_conversation(stubs, alice)).id
    traceparent = ("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
    events = await collect(
        stubs.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation_id, content="hello"),
            metadata=(*alice.md, traceparent, ("x-request-id", "untraced-1")),
        )
    )
    assert kinds(events)[-1] == "completed"
    assert await stubs.app.chat.generations.idle(timeout=30)
    await asyncio.sleep(0.2)  # the background work after an exchange (usage, title) too
    assert spans.get_finished_spans() == ()
    [line] = [json.loads(r.getMessage()) for r in caplog.records if "untraced-1" in r.getMessage()]
    assert line["trace_id"] is None


def test_without_an_endpoint_the_sdk_is_never_imported(tmp_path: Path) -> None:
    """Off costs nothing: building a whole App imports no part of the OpenTelemetry SDK
    and instruments nothing (a fresh interpreter, as `parley serve` would be)."""
    script = (
        "import sys, asyncpg\n"
        "from parley_server.app import build_app\n"
        "from parley_server.settings import Settings\n"
        f"settings = Settings.from_env({{'PARLEY_DATA_DIR': {str(tmp_path)!r}}})\n"
        "app = build_app(settings, 'postgresql://nobody@127.0.0.1:1/none')\n"
        "assert app.tracing is None\n"
        "prefixes = ('opentelemetry.sdk', 'opentelemetry.instrumentation')\n"
        "loaded = [name for name in sys.modules if name.startswith(prefixes)]\n"
        "assert not loaded, loaded\n"
        "assert not hasattr(asyncpg.Connection.fetch, '__wrapped__')\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("ratio", "sampled"), [(0.0, False), (1.0, True)])
def test_the_sample_ratio_chooses_which_rpcs_start_a_trace(ratio: float, sampled: bool) -> None:
    tracer = TracerProvider(sampler=rpc_sampler(ratio)).get_tracer("test")
    assert tracer.start_span("rpc", kind=SpanKind.SERVER).is_recording() is sampled
    # A caller's decision holds either way ...
    for flags, recording in [(TraceFlags.SAMPLED, True), (TraceFlags.DEFAULT, False)]:
        caller = SpanContext(int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), is_remote=True, trace_flags=TraceFlags(flags))
        parent = trace.set_span_in_context(NonRecordingSpan(caller))
        assert tracer.start_span("rpc", context=parent, kind=SpanKind.SERVER).is_recording() is recording
    # ... and work no RPC started starts no trace.
    assert not tracer.start_span("SELECT", kind=SpanKind.CLIENT).is_recording()


async def test_a_stream_the_caller_cancels_still_ends_its_span_and_its_generation_traced(
    traced: Stubs, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with FakeOpenAI(words=["slow"] * 20, token_delay=0.05) as fake:
        alice, conversation_id = await model_conversation(traced, fake)
        spans.clear()
        call = traced.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation_id, content="Why tides?"), metadata=alice.md
        )
        async for event in call:
            if event.WhichOneof("event") == "delta":
                break
        call.cancel()  # a disconnect: the generation goes on, in the same trace
        root, trace = await finished_trace(traced, spans, SEND_MESSAGE)
    [provider] = [span for span in trace if span.name == "chat fake-model"]
    assert provider.parent == root.context and provider.attributes is not None
    assert provider.attributes["gen_ai.usage.output_tokens"] == 20, "the whole answer, after the RPC ended"
    assert provider.end_time is not None and root.end_time is not None and provider.end_time > root.end_time
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")], (
        "no context detached in the wrong place"
    )
