"""The server's log lines: the time-caching formatter writes what logging's own
would, and the RPC line written without a record is the line a record gives."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from parley_server.common import logs
from parley_server.common.logs import FORMAT, TimeCachingFormatter

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


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Callable[[], tuple[logging.Logger, io.StringIO]]:
    """A logger whose records reach only a handler as `configure` installs it, writing to a string.

    Called from the test's body: pytest adds its capturing handlers to the
    root logger after the fixtures have run, and these take their place.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    formatter = TimeCachingFormatter(FORMAT)
    handler.setFormatter(formatter)
    monkeypatch.setattr(logs, "_installed", (handler, formatter))
    logger = logging.getLogger("parley.lines-test")
    monkeypatch.setattr(logger, "handlers", [])

    def install() -> tuple[logging.Logger, io.StringIO]:
        monkeypatch.setattr(logging.root, "handlers", [handler])
        return logger, stream

    return install


def test_a_line_only_the_installed_handler_would_see_is_written_without_a_record(
    installed: Callable[[], tuple[logging.Logger, io.StringIO]], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = installed()

    def no_record(*args: Any) -> NoReturn:
        raise AssertionError("a record was made")

    monkeypatch.setattr(logger, "makeRecord", no_record)
    logs.info_line(logger, MESSAGE)
    logs.info_line(logger, MESSAGE)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(LINE.match(line) for line in lines), lines


@pytest.mark.parametrize("where", ["logger", "root"])
def test_another_handler_gets_a_record_and_the_line_is_written_as_before(
    installed: Callable[[], tuple[logging.Logger, io.StringIO]], where: str
) -> None:
    logger, stream = installed()
    collected = Collected()
    (logger if where == "logger" else logging.root).handlers.append(collected)
    logs.info_line(logger, MESSAGE)
    assert collected.messages == [MESSAGE]
    assert LINE.match(stream.getvalue().rstrip("\n")), stream.getvalue()


def test_a_filter_on_the_logger_sees_a_record(installed: Callable[[], tuple[logging.Logger, io.StringIO]]) -> None:
    logger, stream = installed()
    seen: list[str] = []

    def sees_and_drops(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return False

    logger.addFilter(sees_and_drops)
    try:
        logs.info_line(logger, MESSAGE)
    finally:
        logger.filters.clear()
    assert seen == [MESSAGE]
    assert stream.getvalue() == ""


def test_a_failed_write_is_reported_as_logging_reports_it_and_never_raised(
    installed: Callable[[], tuple[logging.Logger, io.StringIO]], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = installed()
    stream.close()  # writing raises ValueError, as a closed stderr would
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(logging.StreamHandler, "handleError", lambda handler, record: reported.append(record))
    logs.info_line(logger, MESSAGE)
    assert [record.getMessage() for record in reported] == [MESSAGE]
