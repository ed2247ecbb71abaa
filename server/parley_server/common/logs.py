"""The process's log set-up: one line per record on stderr, made cheaply.

A busy server writes a line per RPC (transport/interceptors/rpc_log.py),
so what every record costs counts. logging.Formatter formats the time of
each record anew (time.localtime and time.strftime, 8 us under load);
`TimeCachingFormatter` writes the same text but formats the date and time
once per second. A record also looks up its thread's and process's names
and ids, which the format never shows; `configure` turns those look-ups
off. Measured by formatting and writing 100,000 RPC lines (one process,
timeit-style loop, noisy shared machine): 17-22 us of CPU per line with
logging.basicConfig's set-up, 13-16 us with this one.

Under load a record costs far more than in that loop (the process's
caches are shared with gRPC's threads, PostgreSQL and the clients): with
the RPC line on, a GetConversation cost 334-338 us of server CPU, and
without it 274-275 (scripts/bench_unary.py). So the RPC line is made
without a record whenever nothing but the handler set up here would see
it, and is made and written later, with the other lines of the next few
milliseconds (`info_later`, `DeferringHandler`).
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# With tracing on, each line names the trace it was logged in ("-": none).
TRACED_FORMAT = "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s %(message)s"
# logging.Formatter.formatTime's default: the date and time, then ",milliseconds".
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# How long a deferred line may wait for its write (DeferringHandler).
FLUSH_DELAY_SECONDS = 0.05
T = TypeVar("T")


class TimeCachingFormatter(logging.Formatter):
    """logging.Formatter's default time text, with the date and time formatted once per second."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._format = fmt
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._asctime(record.created, int(record.msecs))

    def line(self, logger: logging.Logger, level: int, message: str, created: float) -> str:
        """What `format` writes for a record of these fields, made without one (`info_line`)."""
        fields = {
            "asctime": self._asctime(created, int((created - int(created)) * 1000)),
            "levelname": logging.getLevelName(level),
            "name": logger.name,
            "message": message,
        }
        return self._format % fields

    def _asctime(self, created: float, msecs: int) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime(DATE_FORMAT, self.converter(created))
        return f"{self._text},{msecs:03d}"


class DeferringHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that also takes lines to write a moment later (`defer`), several per write.

    The RPC line is made and written for every call. Timed inside a served
    process under load (scripts/bench_unary.py, PostgreSQL 15, one worker),
    making and writing it at once took 23 us of each call, 15 of them in
    the write (a system call of its own, to a file or a pipe whose reader
    it wakes), where the same line took 1.5 us to make in a loop. So a
    deferred line keeps only its fields and its time until the next flush,
    at most FLUSH_DELAY_SECONDS later, which makes every pending line in
    one go and writes them in chunks of at most PIPE_BUF bytes: a write
    that size to a pipe is atomic, so workers sharing stderr never
    interleave within a line. Measured against a server writing each line
    at once, in one run with alternating rounds: GetConversation 1.13x the
    calls per second (325 -> 294 us of server CPU per call), the first page
    of ListConversations 1.17x (378 -> 327 us).

    Every other record (a warning, a traceback) first writes the pending
    lines, so the stream keeps the order things were logged in; so does
    `flush`, which logging.shutdown calls at exit. A process killed outright
    loses at most FLUSH_DELAY_SECONDS of RPC lines.
    """

    def __init__(self) -> None:
        super().__init__()
        # (logger, render, fields, created): the line is render(fields), logged at `created`.
        self._pending: list[tuple[logging.Logger, Callable[[Any], str], Any, float]] = []
        # The event loop a flush is due on; None when none is.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def defer(self, logger: logging.Logger, render: Callable[[Any], str], fields: Any) -> None:
        """Write the INFO line render(fields) of `logger` (as logged now) at the next flush, which is soon."""
        with self.lock:  # type: ignore[union-attr]
            self._pending.append((logger, render, fields, time.time()))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here to flush later: now, then
            self.flush()
            return
        if self._flush_on is not loop:  # none due, or due on a loop that has since stopped
            self._flush_on = loop
            loop.call_later(FLUSH_DELAY_SECONDS, self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        self._write_pending()  # Handler.handle holds the lock
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_on = None
            self._write_pending()
            super().flush()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        formatter = self.formatter
        assert isinstance(formatter, TimeCachingFormatter)
        chunk: list[str] = []
        size = 0
        for logger, render, fields, created in pending:
            message = render(fields)
            line = formatter.line(logger, logging.INFO, message, created) + self.terminator
            length = len(line) if line.isascii() else len(line.encode(self.stream.encoding or "utf-8"))
            if chunk and size + length > select.PIPE_BUF:
                self._write(chunk, logger, message)
                chunk, size = [], 0
            chunk.append(line)
            size += length
        self._write(chunk, logger, message)

    def _write(self, lines: list[str], logger: logging.Logger, last: str) -> None:
        """Write lines in one piece; a failure is reported as logging reports a
        failed record (here, for the last of them), never raised."""
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except Exception:
            self.handleError(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, last, (), None))


# The handler `configure` installed; None until it runs.
_installed: DeferringHandler | None = None


def info_later(logger: logging.Logger, render: Callable[[T], str], fields: T) -> None:
    """Log the message render(fields) on `logger` at INFO, as logger.info would,
    for a line made on every RPC (transport/interceptors/rpc_log.py): soon
    rather than now, and all such lines made in one go.

    When the record would reach only the handler `configure` installed,
    unfiltered, the handler writes the line at its next flush
    (`DeferringHandler`). Otherwise (a test capturing records adds a handler;
    tracing adds a filter; an embedding program logs its own way) a record
    is made now and handled as usual. The caller checks that INFO is enabled.
    """
    if _installed is not None and _reaches_only(logger, _installed):
        _installed.defer(logger, render, fields)
        return
    # log.info would also look up its caller by walking the stack, which the format never shows.
    logger.handle(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, render(fields), (), None))


def _reaches_only(logger: logging.Logger, handler: logging.Handler) -> bool:
    """Whether a record on `logger` would be passed, unfiltered, to `handler` alone (Logger.callHandlers' walk)."""
    if logger.disabled or logger.filters or handler.filters or handler.level > logging.INFO:
        return False
    node: logging.Logger | None = logger
    while node is not None:
        if node.handlers:
            return node is logging.root and len(node.handlers) == 1 and node.handlers[0] is handler
        if not node.propagate:
            return False
        node = node.parent
    return False


def configure(level: str | int, *, traced: bool = False) -> None:
    """Log records of `level` and above to stderr, one line each (logging.basicConfig's place);
    `traced`: with each line's trace id (tracing is on)."""
    global _installed
    handler = DeferringHandler()
    formatter = TimeCachingFormatter(TRACED_FORMAT if traced else FORMAT)
    handler.setFormatter(formatter)
    if traced:
        from parley_server.common.tracing import TraceIdFilter  # imported only when tracing is on

        handler.addFilter(TraceIdFilter())
    logging.basicConfig(level=level, handlers=[handler])
    _installed = handler
    # FORMAT shows none of these; each record would look them up.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
