"""OpenTelemetry tracing of one Parley process: on only when an OTLP endpoint is set.

Off (the default) this module is not even imported (the OpenTelemetry
packages take a noticeable part of a second to import): no tracer provider
exists, nothing is instrumented, and the code that would make spans holds
None instead of a tracer (app.py decides).

On, a trace starts at each incoming RPC (transport/tracing.py), continuing
the caller's W3C `traceparent` when it sends one; every SQL statement the
RPC runs, on SQLAlchemy's connections and on the plain asyncpg pool alike
(both are asyncpg connections, which are instrumented here), and every call
to a model provider (agents/providers/openai_provider.py, which sends the
trace on in its own `traceparent`) are spans inside it, including those of
the generation the RPC starts, which outlives it. Work that no RPC started
(the health probe, heartbeats, event delivery, periodic flushes and sweeps)
starts no trace: a trace per probe every second would bury the RPCs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from parley_server.settings import Settings

# The name of Parley's own spans' instrumentation scope.
TRACER_NAME = "parley"


class Tracing:
    """The process's tracer provider, exporting through `processor`, and the SQL instrumentation.

    The asyncpg instrumentation patches asyncpg's classes, so one Tracing at
    a time per process instruments; `close` undoes it and flushes what is
    left to export.
    """

    def __init__(self, processor: SpanProcessor, service_name: str, sample_ratio: float = 1.0) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service_name}), sampler=rpc_sampler(sample_ratio)
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer(TRACER_NAME)
        self._sql = AsyncPGInstrumentor()
        self._sql.instrument(tracer_provider=self.provider)

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        """Tracing that exports to OTEL_EXPORTER_OTLP_ENDPOINT over OTLP/gRPC, in batches off the event loop."""
        # Imported here: the exporter brings its own gRPC stubs, which nothing else needs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint
        assert endpoint is not None, "tracing is on only with an endpoint"
        # An http:// endpoint means plaintext, https:// TLS (the exporter reads the scheme).
        return cls(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)),
            settings.otel_service_name,
            settings.otel_traces_sampler_arg,
        )

    def close(self) -> None:
        """Stop instrumenting and export the spans not sent yet (blocks for at most the exporter's timeout)."""
        self._sql.uninstrument()
        self.provider.shutdown()


def rpc_sampler(ratio: float) -> Sampler:
    """Traces start at `ratio` of the incoming RPCs (by trace id) and nowhere else; below
    a root, the root's decision, or the caller's sampled flag, holds for every span."""
    return ParentBased(root=_RpcRoots(TraceIdRatioBased(ratio)))


class _RpcRoots(Sampler):
    """Start traces at incoming RPCs (SERVER spans) only, as `rpcs` decides; see the module's docstring."""

    def __init__(self, rpcs: Sampler) -> None:
        self._rpcs = rpcs

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.SERVER:
            return self._rpcs.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return SamplingResult(Decision.DROP, None, trace_state)

    def get_description(self) -> str:
        return f"RpcRoots{{{self._rpcs.get_description()}}}"


def current_trace_id() -> str | None:
    """The current trace's id as 32 hex digits (as W3C traceparent writes it), None outside a trace."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


class TraceIdFilter(logging.Filter):
    """Gives every record a `trace_id` attribute (the current trace's id, or "-") for the log format to print."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id() or "-"
        return True
