"""Channel options for talking to Parley: retry policy and keepalive.

`channel_options()` is what ParleyClient uses; it is public so a backend that
builds its own `grpc.aio` channel can reuse the same settings.

Retries (gRPC service config, `grpc.service_config`)
----------------------------------------------------
The gRPC library retries a call that failed with UNAVAILABLE (server not
reachable, connection reset, replica shutting down, its database restarting)
with exponential backoff and jitter: at most 5 attempts, waits drawn from
0..0.2 s, 0..0.4 s, ... capped at 5 s, plus a retry throttle so a server that
is really down is not flooded. When the server names a delay (its
`grpc-retry-pushback-ms` trailer, the same as the RetryInfo it sends with
DATABASE_UNAVAILABLE), gRPC waits exactly that long instead.

Only methods whose proto says so are retried: `idempotency_level` is
NO_SIDE_EFFECTS or IDEMPOTENT (the protos are the one place this is stated;
`parley.client.rpcs` reads them), because UNAVAILABLE does not tell whether
the server already executed the call:

- reads (NO_SIDE_EFFECTS: Get*, List*, Check*, GetUsage, GetStats,
  GetSystemHealth, GetMessagesForAgent, GetCurrentUser, and the streams
  WatchConversation and ResumeStream) change nothing;
- the AIP-155 creates (IDEMPOTENT: CreateConversation, CreateMessage,
  CreateAgent) carry a request_id, so a repeated attempt returns the first
  result instead of a duplicate. ParleyClient fills an empty request_id of
  every IDEMPOTENT method that has one before sending, so this holds even when
  the caller did not set one (all attempts of one call share it);
- GetOrCreateFreshConversation, JoinWaitlist and CancelGeneration are
  IDEMPOTENT by contract (a repeat returns the same conversation / position /
  final message).

gRPC retries a stream only before its first response arrives, which is not
where streams break; so for WatchConversation and ResumeStream it covers only
a failed start.

Deliberately *not* retried (idempotency_level unset):

- Login and Register: not idempotent (a repeated Register answers
  ALREADY_EXISTS, a repeated Login counts as another login and another
  session), and they carry a password, which should not be sent more often
  than the user asked;
- RefreshToken: it rotates; if the first attempt reached the server, a retry
  presents an already rotated token, which the server treats as token theft and
  revokes the whole session family;
- Updates, deletes, ChangePassword, ResetPassword, VerifyEmail and the other
  writes: a retry could clobber a concurrent change or answer NOT_FOUND /
  FAILED_PRECONDITION for work that actually succeeded;
- SendMessage, RegenerateMessage, EditMessage: without a request_id a
  repeat starts a second exchange. ParleyClient.send_message() /
  regenerate() / edit_message() / resume() handle UNAVAILABLE themselves
  instead, mid-stream too: they re-attach with the same request_id
  (the starting call is idempotent with it) or ResumeStream from the last offset
  received, so the caller sees every character exactly once.

Keepalive
---------
The server allows client pings every 20 s (`min_ping_interval_without_data`)
and answers faster pings with GOAWAY (too_many_pings). The client pings every
30 s while a call is open and waits 10 s for the ack, so a dead connection
under a long stream (a generation, a WatchConversation) is noticed in about
40 s, and idle streams behind proxies and NATs stay open. It sends no pings
when no call is open (the server closes connections idle for 30 minutes; the
next call reconnects). Reconnect backoff starts at 0.5 s and is capped at 10 s
so a restarted server is picked up quickly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor_pb2 import MethodOptions

from parley.api.v1 import access_pb2
from parley.client import rpcs

__all__ = ["IDEMPOTENT_METHODS", "KEEPALIVE_OPTIONS", "PUBLIC_METHODS", "channel_options", "service_config"]

# Methods gRPC retries on UNAVAILABLE, by fully qualified service name.
IDEMPOTENT_METHODS: Mapping[str, tuple[str, ...]] = {
    service.full_name: tuple(m.name for m in service.methods if rpcs.retry_safe(m)) for service in rpcs.SERVICES
}

# IDEMPOTENT creates whose request_id (AIP-155) ParleyClient fills when empty.
REQUEST_ID_METHODS: frozenset[str] = frozenset(
    rpcs.full_name(m)
    for m in rpcs.methods()
    if m.GetOptions().idempotency_level == MethodOptions.IDEMPOTENT and "request_id" in m.input_type.fields_by_name
)

# Methods that take no access token: the client neither attaches one nor
# refreshes on UNAUTHENTICATED (a failed Login is UNAUTHENTICATED too).
PUBLIC_METHODS: frozenset[str] = frozenset(
    rpcs.full_name(m) for m in rpcs.methods() if rpcs.access(m) == access_pb2.ACCESS_PUBLIC
)
# The standard services (health, reflection), which carry no access option.
PUBLIC_SERVICE_PREFIXES = ("/grpc.health.", "/grpc.reflection.")

RETRY_POLICY: Mapping[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),  # >= the server's 20 s minimum ping interval
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),  # keep pinging under a quiet stream
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 10_000),
)


def service_config(idempotent: Mapping[str, Iterable[str]] = IDEMPOTENT_METHODS) -> dict[str, Any]:
    """The gRPC service config: retry UNAVAILABLE for the idempotent methods only."""
    names = [{"service": service, "method": method} for service, methods in idempotent.items() for method in methods]
    return {
        "methodConfig": [{"name": names, "retryPolicy": dict(RETRY_POLICY)}],
        # Token bucket: -1 per failed call, +0.1 per success, retries only
        # while above 5, so a server that is really down is not hammered.
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Channel options: retries (service config) and keepalive, then `extra` (which wins)."""
    options: dict[str, Any] = {
        "grpc.enable_retries": 1,
        "grpc.service_config": json.dumps(service_config()),
        **dict(KEEPALIVE_OPTIONS),
    }
    options.update(dict(extra))
    return list(options.items())
