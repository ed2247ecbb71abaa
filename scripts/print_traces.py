"""A stand-in OpenTelemetry collector: prints each span `parley serve` exports, one line each.

For trying tracing without a collector of your own (see the README's Tracing section):

    .venv/bin/python scripts/print_traces.py &
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 .venv/bin/parley serve

Each line: trace id, span id, parent span id ("-" for a root), kind, duration,
name, and the statement of a SQL span. It runs until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.otlp_collector import Collector, ReceivedSpan  # noqa: E402

STATEMENT_CHARS = 80


def line(span: ReceivedSpan) -> str:
    statement = str(span.attributes.get("db.statement") or span.attributes.get("db.query.text") or "")
    detail = " ".join(statement.split())[:STATEMENT_CHARS]
    return (
        f"{span.trace_id} {span.span_id} {span.parent_id or '-':16} {span.kind:6} {span.duration_ms:9.2f} ms "
        f"{span.name} {detail}".rstrip()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:4317", help="where to listen for OTLP/gRPC (default %(default)s)")
    args = parser.parse_args()
    with Collector(args.addr, on_span=lambda span: print(line(span), flush=True)) as collector:
        print(f"receiving traces on {collector.endpoint}", file=sys.stderr, flush=True)
        try:
            collector.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
