"""JSON Lines from a stream of byte chunks, one bounded line at a time.

An import arrives as chunks cut anywhere, so a line may span many chunks and
a chunk may hold many lines. Only the line being read is kept, and never
more than the limit of it: the bytes of a longer line are dropped as they
arrive (a 100 MB line costs 10 MB at most), and the line is reported as too
long once its end is found.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """Line `number` (1-based) of the file; data None when it passed the limit."""

    number: int
    data: bytes | None


async def read_lines(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[Line]:
    """The lines of the concatenated chunks, without their line ends (\\n or \\r\\n)."""
    buffer = bytearray()
    too_long = False
    number = 1
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if not too_long:
                buffer += piece
                if len(buffer) > max_bytes + 1:  # + 1: a \r before the \n is not content
                    too_long = True
                    buffer.clear()
            if end < 0:
                break
            yield _line(number, buffer, too_long, max_bytes)
            buffer.clear()
            too_long = False
            number += 1
            start = end + 1
    if buffer or too_long:
        yield _line(number, buffer, too_long, max_bytes)


def _line(number: int, buffer: bytearray, too_long: bool, max_bytes: int) -> Line:
    data = bytes(buffer[:-1] if buffer.endswith(b"\r") else buffer)
    return Line(number, None if too_long or len(data) > max_bytes else data)
