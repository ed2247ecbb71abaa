"""The RPC's span: the interceptor in front of Parley's own when tracing is on.

Imported only then (see common/tracing.py). It continues the caller's W3C
`traceparent` from the call's metadata, or starts a trace, and keeps the
RPC's span current while the RPC runs, so the SQL and provider spans nest
under it and the per-RPC log line (rpc_log) carries its trace id. The
standard health and reflection services are not traced: Envoy checks
health every second.
"""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_prefix

from parley_server.common.tracing import Tracing, current_trace_id
from parley_server.transport.interceptors import rpc_log

UNTRACED_SERVICE_PREFIXES = ("grpc.health.", "grpc.reflection.")


def rpc_spans(tracing: Tracing) -> grpc.aio.ServerInterceptor:
    """The interceptor that traces each RPC; from now on the RPC log lines carry trace ids."""
    rpc_log.trace_ids = current_trace_id
    traced = negate(any_of(*(service_prefix(prefix) for prefix in UNTRACED_SERVICE_PREFIXES)))
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(tracer_provider=tracing.provider, filter_=traced)
    return interceptor
