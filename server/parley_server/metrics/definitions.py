"""Every metric Parley exports, declared once.

The per-RPC metrics carry the names, labels and help texts of the gRPC
ecosystem's interceptors (go-grpc-prometheus, py-grpc-prometheus), so the
dashboards and alerts written for those work unchanged; Parley's own are
prefixed `parley_`.

Every metric has labels, so none holds a sample until code records one: that
lets `endpoint.share_between_processes` switch prometheus_client to files
shared by `--workers` processes after this module was imported. Gauges say
how processes' values combine (`livesum`: the sum over the processes alive).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

# The `*_created` series beside every counter and histogram: the ecosystem's
# interceptors have none, and nothing here needs them.
disable_created_metrics()

RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
# The Go client's DefBuckets, which go-grpc-prometheus's latency histogram uses.
GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

RPC_STARTED = Counter("grpc_server_started_total", "Total number of RPCs started on the server.", RPC_LABELS)
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    (*RPC_LABELS, "grpc_code"),
)
RPC_MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", RPC_LABELS
)
RPC_MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", RPC_LABELS
)
RPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    RPC_LABELS,
    buckets=GO_DEFAULT_BUCKETS,
)
# Not a grpc_server_handled_total series: its method label would be whatever
# name a caller sent. The call's log line names the method.
UNIMPLEMENTED_CALLS = Counter(
    "parley_unimplemented_calls_total",
    "Calls to a method this server does not have, answered UNIMPLEMENTED (a client built from other protos).",
)
STREAMS_OPEN = Gauge(
    "parley_streams_open",
    "Streaming RPCs in progress (chat answers, resumes, watches, health watches).",
    ("grpc_service", "grpc_method"),
    multiprocess_mode="livesum",
)

GENERATIONS_RUNNING = Gauge(
    "parley_generations_running",
    "Model answers being generated, by provider.",
    ("provider",),
    multiprocess_mode="livesum",
)
GENERATION_FIRST_TOKEN_SECONDS = Histogram(
    "parley_generation_first_token_seconds",
    "Time from the start of a generation to its first text from the model.",
    ("provider",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
GENERATION_TOKENS = Counter(
    "parley_generation_tokens_total",
    "Completion tokens generated (as the provider reports them); rate() gives tokens per second.",
    ("provider",),
)
GENERATION_TOKENS_PER_SECOND = Histogram(
    "parley_generation_tokens_per_second",
    "Speed of each generation: completion tokens over the time from its first text to its end.",
    ("provider",),
    buckets=(1, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500),
)
GENERATIONS = Counter(
    "parley_generations_total",
    "Generations ended, by outcome (the message's final state: complete, failed or cancelled).",
    ("provider", "outcome"),
)

DB_CONNECTIONS_IN_USE = Gauge(
    "parley_db_connections_in_use",
    "PostgreSQL connections handed out by a pool (asyncpg: single statements; sqlalchemy: transactions).",
    ("pool",),
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_WAITING = Gauge(
    "parley_db_connections_waiting",
    "Callers waiting for a pool to hand them a PostgreSQL connection (or to open one).",
    ("pool",),
    multiprocess_mode="livesum",
)


class Uncounted:
    """Stands in for a gauge's child where metrics are off (no endpoint to read
    them): a prometheus_client update takes a lock, and the pools' gauges
    were two such updates per statement, about 1% of a GetConversation's
    CPU under load."""

    def inc(self) -> None:
        """Nothing: uncounted."""

    def dec(self) -> None:
        """Nothing: uncounted."""


UNCOUNTED = Uncounted()

RATE_LIMIT_REFUSALS = Counter(
    "parley_rate_limit_refusals_total",
    "Calls refused with RESOURCE_EXHAUSTED by a rate limit (login-email, login-client, verify-email, api-key).",
    ("limit",),
)

NOTIFY_EVENTS = Counter(
    "parley_notify_events_total",
    "Conversation events that crossed replicas through PostgreSQL NOTIFY; rate() gives events per second.",
    ("direction",),
)

ALL: tuple[MetricWrapperBase, ...] = (
    RPC_STARTED,
    RPC_HANDLED,
    RPC_MSG_RECEIVED,
    RPC_MSG_SENT,
    RPC_HANDLING_SECONDS,
    STREAMS_OPEN,
    GENERATIONS_RUNNING,
    GENERATION_FIRST_TOKEN_SECONDS,
    GENERATION_TOKENS,
    GENERATION_TOKENS_PER_SECOND,
    GENERATIONS,
    DB_CONNECTIONS_IN_USE,
    DB_CONNECTIONS_WAITING,
    RATE_LIMIT_REFUSALS,
    NOTIFY_EVENTS,
)
