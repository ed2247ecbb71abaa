"""The server's log lines: the time-caching formatter writes what logging's own would."""

from __future__ import annotations

import logging

import pytest

from parley_server.common.logs import FORMAT, TimeCachingFormatter


def record(created: float) -> logging.LogRecord:
    made = logging.LogRecord("parley.rpc", logging.INFO, __file__, 0, '{"rpc": "x"}', (), None)
    made.created, made.msecs = created, (created - int(created)) * 1000
    return made


@pytest.mark.parametrize(
    "times",
    [
        [1_764_770_000.0, 1_764_770_000.999, 1_764_770_001.0005],  # a second boundary passed
        [1_764_770_059.5, 1_764_770_060.25, 1_764_770_059.75],  # a minute boundary, and back (clock stepped)
        [1_000.0, 1_764_770_000.123],
    ],
)
def test_lines_equal_logging_formatters_across_seconds(times: list[float]) -> None:
    cached, standard = TimeCachingFormatter(FORMAT), logging.Formatter(FORMAT)
    for created in times:
        assert cached.format(record(created)) == standard.format(record(created))
