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
without it 274-275 (scripts/bench_unary.py). `info_line` therefore writes
the line itself, without a record, whenever nothing but the handler set up
here would see it.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# With tracing on, each line names the trace it was logged in ("-": none).
TRACED_FORMAT = "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s %(message)s"
# logging.Formatter.formatTime's default: the date and time, then ",milliseconds".
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


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


# The handler `configure` installed and its formatter; None until it runs.
_installed: tuple[logging.StreamHandler[TextIO], TimeCachingFormatter] | None = None


def info_line(logger: logging.Logger, message: str) -> None:
    """Log `message` on `logger` at INFO, as logger.info(message) would, but
    for a line written on every RPC (transport/interceptors/rpc_log.py).

    When the record would reach only the handler `configure` installed,
    unfiltered, the line that handler would write is formatted here and
    written to its stream. Otherwise (a test capturing records adds a
    handler; tracing adds a filter; an embedding program logs its own way)
    a record is made and handled as usual, as it is when the write fails
    (logging then reports the failure on stderr and never raises into the
    RPC). The caller checks that INFO is enabled.
    """
    if _installed is not None and _reaches_only(logger, _installed[0]):
        handler, formatter = _installed
        text = formatter.line(logger, logging.INFO, message, time.time())
        try:
            with handler.lock:  # type: ignore[union-attr]
                handler.stream.write(text + handler.terminator)
                handler.stream.flush()
        except Exception:  # the record below meets the same failure, which logging reports
            pass
        else:
            return
    # log.info would also look up its caller by walking the stack, which the format never shows.
    logger.handle(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, message, (), None))


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
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler()
    formatter = TimeCachingFormatter(TRACED_FORMAT if traced else FORMAT)
    handler.setFormatter(formatter)
    if traced:
        from parley_server.common.tracing import TraceIdFilter  # imported only when tracing is on

        handler.addFilter(TraceIdFilter())
    logging.basicConfig(level=level, handlers=[handler])
    _installed = handler, formatter
    # FORMAT shows none of these; each record would look them up.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
