"""The per-RPC metrics of one method, with its label children looked up once.

`.labels(...)` costs a lock, a tuple and a dict lookup per call; the
interceptor builds one `RpcMetrics` per method (when it wraps the method's
handler, on its first call), so a call only increments the children kept
here. The `grpc_code` children are added as each code first occurs.

Message counts follow go-grpc-prometheus: a unary request counts as received
when the call starts, a unary response as sent when the handler returns it,
and streamed messages one by one as they pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from parley_server.metrics.definitions import (
    RPC_HANDLED,
    RPC_HANDLING_SECONDS,
    RPC_MSG_RECEIVED,
    RPC_MSG_SENT,
    RPC_STARTED,
    STREAMS_OPEN,
)

# The grpc_type label, by (request streaming, response streaming).
GRPC_TYPES = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


class RpcMetrics:
    """Counters, latency histogram and open-stream gauge of one method."""

    __slots__ = (
        "_handled",
        "_handling",
        "_labels",
        "_open",
        "_request_streaming",
        "_response_streaming",
        "_started",
        "received",
        "sent",
    )

    def __init__(self, full_method: str, request_streaming: bool, response_streaming: bool) -> None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        self._labels = (GRPC_TYPES[request_streaming, response_streaming], service, method)
        self._request_streaming = request_streaming
        self._response_streaming = response_streaming
        self._started = RPC_STARTED.labels(*self._labels)
        self._handling = RPC_HANDLING_SECONDS.labels(*self._labels)
        self._handled: dict[str, Any] = {}
        self.received = RPC_MSG_RECEIVED.labels(*self._labels)
        self.sent = RPC_MSG_SENT.labels(*self._labels)
        streaming = request_streaming or response_streaming
        self._open = STREAMS_OPEN.labels(service, method) if streaming else None

    def start(self) -> None:
        """A call began (its unary request, if any, has arrived)."""
        self._started.inc()
        if not self._request_streaming:
            self.received.inc()
        if self._open is not None:
            self._open.inc()

    def returned(self) -> None:
        """The handler returned its unary response."""
        if not self._response_streaming:
            self.sent.inc()

    def end(self, code: str, seconds: float) -> None:
        """The call ended with status `code` (a grpc.StatusCode name) after `seconds`."""
        handled = self._handled.get(code)
        if handled is None:
            handled = self._handled[code] = RPC_HANDLED.labels(*self._labels, code)
        handled.inc()
        self._handling.observe(seconds)
        if self._open is not None:
            self._open.dec()

    def counting(self, check: Callable[[AsyncIterator[Any]], AsyncIterator[Any]]) -> Callable[..., Any]:
        """`check` for a request stream, counting each message it passes on."""
        received = self.received

        async def counted(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in check(requests):
                received.inc()
                yield request

        return counted
