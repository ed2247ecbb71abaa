"""`parley serve` with OTEL_EXPORTER_OTLP_ENDPOINT set exports its traces over
OTLP/gRPC (to a stand-in collector) and names the trace in its log lines."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.otlp_collector import Collector
from tests.helpers.served import start

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
REGISTER = "/parley.auth.v1.AuthService/Register"


def test_serve_exports_each_rpcs_trace_and_logs_its_id(tmp_path: Path) -> None:
    with Collector() as collector:
        served = start(tmp_path, envoy=False, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint)
        try:
            result = served.grpcurl(
                "parley.auth.v1.AuthService/Register",
                data={"email": "otel@example.com", "password": "correct horse battery"},
                headers=(f"traceparent: 00-{CALLER_TRACE}-{CALLER_SPAN}-01",),
            )
            assert result.returncode == 0, result.stderr
        finally:
            # The last spans are flushed on the way out, within the exporter's timeout.
            assert served.stop() == 0, served.log_tail()
    trace = [span for span in collector.spans if span.trace_id == CALLER_TRACE]
    [rpc] = [span for span in trace if span.name == REGISTER]
    assert (rpc.kind, rpc.parent_id, rpc.service) == ("SERVER", CALLER_SPAN, "parley")
    statements = [span for span in trace if span.kind == "CLIENT" and span.parent_id == rpc.span_id]
    assert any(span.name == "INSERT" for span in statements), [span.name for span in trace]
    # Only RPCs start traces: not the health checks and reflection (grpcurl's), nor the
    # background work (the database probe every second, heartbeats, sweeps).
    assert {span.trace_id for span in collector.spans} == {CALLER_TRACE}
    log = served.log.read_text()
    [rpc_line] = [line for line in log.splitlines() if f'"rpc": "{REGISTER}"' in line]
    assert json.loads(rpc_line[rpc_line.index("{") :])["trace_id"] == CALLER_TRACE
    # Every line names its trace, "-" when it was logged outside one.
    assert f"trace_id={CALLER_TRACE} " in rpc_line
    assert all(" trace_id=" in line for line in log.splitlines() if " INFO parley" in line)
    assert any(" trace_id=- " in line and "listening on" in line for line in log.splitlines())
