"""A stand-in OpenTelemetry collector: receives traces over OTLP/gRPC and keeps their spans.

For tests of what `parley serve` exports, and for a developer without a
collector (scripts/print_traces.py prints each span as it arrives). It runs
grpcio's threaded server, so it keeps receiving while a test blocks on a
child process (a server flushes its last spans while it shuts down).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids as hex (as traceparent writes them); parent_id "" for a root."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    duration_ms: float
    attributes: dict[str, Any]


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """`with Collector() as collector:` listens on `collector.endpoint` until the block ends."""

    def __init__(self, address: str = "127.0.0.1:0", on_span: Callable[[ReceivedSpan], None] | None = None) -> None:
        self.spans: list[ReceivedSpan] = []
        self._on_span = on_span
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(address)
        self.endpoint = f"http://{address.rsplit(':', 1)[0]}:{self.port}"

    def __enter__(self) -> Collector:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)

    def wait(self) -> None:
        self._server.wait_for_termination()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received = ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=_KINDS.get(span.kind, "INTERNAL"),
                        duration_ms=(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                    with self._lock:
                        self.spans.append(received)
                    if self._on_span is not None:
                        self._on_span(received)
        return trace_service_pb2.ExportTraceServiceResponse()


# opentelemetry.proto.trace.v1.Span.SpanKind
_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(value: Any) -> Any:
    """An OTLP AnyValue's scalar (arrays and maps as their text)."""
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in {"string_value", "int_value", "double_value", "bool_value"} else str(value)
