"""The server's log lines: the time-caching formatter writes what logging's own
would, and the RPC line written later, without a record, is the line a record gives."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import select
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from parley_server.common import logs
from parley_server.common.logs import FLUSH_DELAY_SECONDS, FORMAT, DeferringHandler, TimeCachingFormatter

MESSAGE = '{"rpc": "x"}'
TIMES = [
    [1_764_770_000.0, 1_764_770_000.999, 1_764_770_001.0005],  # a second boundary passed
    [1_764_770_059.5, 1_764_770_060.25, 1_764_770_059.75],  # a minute boundary, and back (clock stepped)
    [1_000.0, 1_764_770_000.123],
]
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO parley\.lines-test " + re.escape(MESSAGE) + "$")


def record(created: float) -> logging.LogRecord:
    made = logging.LogRecord("parley.rpc", logging.INFO, __file__, 0, MESSAGE, (), None)
    made.created, made.msecs = created, int((created - int(created)) * 1000)
    return made


@pytest.mark.parametrize("times", TIMES)
def test_lines_equal_logging_formatters_across_seconds(times: list[float]) -> None:
    cached, standard = TimeCachingFormatter(FORMAT), logging.Formatter(FORMAT)
    for created in times:
        assert cached.format(record(created)) == standard.format(record(created))


@pytest.mark.parametrize("times", TIMES)
def test_a_line_made_without_a_record_equals_the_records(times: list[float]) -> None:
    cached, standard = TimeCachingFormatter(FORMAT), logging.Formatter(FORMAT)
    rpc = logging.getLogger("parley.rpc")
    for created in times:
        assert cached.line(rpc, logging.INFO, MESSAGE, created) == standard.format(record(created))


class Writes(io.StringIO):
    """A stream that also keeps each write's text."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def message(text: str) -> str:
    """info_later's render for a message made beforehand."""
    return text


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Callable[[], tuple[logging.Logger, Writes]]:
    """A logger whose records reach only a handler as `configure` installs it, writing to a string.

    Called from the test's body: pytest adds its capturing handlers to the
    root logger after the fixtures have run, and these take their place.
    """
    stream = Writes()
    handler = DeferringHandler()
    handler.setStream(stream)
    handler.setFormatter(TimeCachingFormatter(FORMAT))
    monkeypatch.setattr(logs, "_installed", handler)
    logger = logging.getLogger("parley.lines-test")
    monkeypatch.setattr(logger, "handlers", [])

    def install() -> tuple[logging.Logger, Writes]:
        monkeypatch.setattr(logging.root, "handlers", [handler])
        return logger, stream

    return install


def test_a_line_only_the_installed_handler_would_see_is_written_without_a_record(
    installed: Callable[[], tuple[logging.Logger, Writes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = installed()

    def no_record(*args: Any) -> NoReturn:
        raise AssertionError("a record was made")

    monkeypatch.setattr(logger, "makeRecord", no_record)
    logs.info_later(logger, message, MESSAGE)
    logs.info_later(logger, message, MESSAGE)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(LINE.match(line) for line in lines), lines


@pytest.mark.parametrize("where", ["logger", "root"])
def test_another_handler_gets_a_record_and_the_line_is_written_as_before(
    installed: Callable[[], tuple[logging.Logger, Writes]], where: str
) -> None:
    logger, stream = installed()
    collected = Collected()
    (logger if where == "logger" else logging.root).handlers.append(collected)
    logs.info_later(logger, message, MESSAGE)
    assert collected.messages == [MESSAGE]
    assert LINE.match(stream.getvalue().rstrip("\n")), stream.getvalue()


def test_a_filter_on_the_logger_sees_a_record(installed: Callable[[], tuple[logging.Logger, Writes]]) -> None:
    logger, stream = installed()
    seen: list[str] = []

    def sees_and_drops(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return False

    logger.addFilter(sees_and_drops)
    try:
        logs.info_later(logger, message, MESSAGE)
    finally:
        logger.filters.clear()
    assert seen == [MESSAGE]
    assert stream.getvalue() == ""


def test_a_failed_write_is_reported_as_logging_reports_it_and_never_raised(
    installed: Callable[[], tuple[logging.Logger, Writes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = installed()
    stream.close()  # writing raises ValueError, as a closed stderr would
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(logging.StreamHandler, "handleError", lambda handler, record: reported.append(record))
    logs.info_later(logger, message, MESSAGE)
    assert [record.getMessage() for record in reported] == [MESSAGE]


async def written(stream: Writes, lines: int) -> list[str]:
    """The stream's lines once there are `lines` of them."""
    async with asyncio.timeout(5):
        while len(found := stream.getvalue().splitlines()) < lines:
            await asyncio.sleep(FLUSH_DELAY_SECONDS / 5)
    return found


async def test_lines_logged_together_are_written_a_moment_later_in_one_write(
    installed: Callable[[], tuple[logging.Logger, Writes]],
) -> None:
    logger, stream = installed()
    for _ in range(3):
        logs.info_later(logger, message, MESSAGE)
    assert stream.getvalue() == ""  # not yet: at the next flush
    lines = await written(stream, 3)
    assert all(LINE.match(line) for line in lines), lines
    assert len(stream.writes) == 1


async def test_another_record_first_writes_the_lines_still_due(
    installed: Callable[[], tuple[logging.Logger, Writes]],
) -> None:
    logger, stream = installed()
    logs.info_later(logger, message, MESSAGE)
    logs.info_later(logger, message, MESSAGE)
    logger.warning("the database is away")
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 3)[2] for line in lines] == ["INFO", "INFO", "WARNING"], lines


async def test_flush_writes_the_lines_still_due(installed: Callable[[], tuple[logging.Logger, Writes]]) -> None:
    """What logging.shutdown calls at exit (and a worker before os._exit)."""
    logger, stream = installed()
    logs.info_later(logger, message, MESSAGE)
    assert logs._installed is not None
    logs._installed.flush()
    assert LINE.match(stream.getvalue().rstrip("\n")), stream.getvalue()


def test_lines_are_written_whole_at_most_pipe_buf_bytes_a_write(
    installed: Callable[[], tuple[logging.Logger, Writes]],
) -> None:
    """A write that size to a pipe is atomic: workers sharing stderr never interleave within a line."""
    logger, stream = installed()
    long = '{"rpc": "' + "x" * 100 + '"}'

    async def log_many() -> None:
        for n in range(100):
            logs.info_later(logger, message, f"{long} {n}")

    asyncio.run(log_many())  # the loop ends before the flush is due; flush() writes them
    assert logs._installed is not None
    logs._installed.flush()
    assert len(stream.writes) > 1
    assert all(len(text.encode()) <= select.PIPE_BUF and text.endswith("\n") for text in stream.writes)
    assert [line.rsplit(" ", 1)[1] for line in stream.getvalue().splitlines()] == [str(n) for n in range(100)]


def test_lines_due_on_a_loop_that_stopped_are_written_with_the_next_loops(
    installed: Callable[[], tuple[logging.Logger, Writes]],
) -> None:
    logger, stream = installed()

    async def log_one() -> None:
        logs.info_later(logger, message, MESSAGE)

    async def log_one_and_wait() -> list[str]:
        logs.info_later(logger, message, MESSAGE)
        return await written(stream, 2)

    asyncio.run(log_one())  # its flush was due on this loop, which is gone
    assert len(asyncio.run(log_one_and_wait())) == 2
