"""What this replica is busy with, for AdminService.GetSystemHealth.

Two counters and the start time, nothing more. build_app creates one Activity
per process and hands it to the chat service, which wraps each open stream and
each running generation in the matching context manager, and to AdminService
and its heartbeat (admin.replicas), which read it: the heartbeat copies it into
the replicas table for the other replicas to list. The event loop is
single-threaded, so plain integers are enough.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Activity:
    """Live counters of one process; `started` is when it was created (at start-up)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.chat_streams = 0
        self.generations = 0

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started

    @contextmanager
    def chat_stream(self) -> Iterator[None]:
        """Count an open SendMessage, ResumeStream or WatchConversation stream."""
        self.chat_streams += 1
        try:
            yield
        finally:
            self.chat_streams -= 1

    @contextmanager
    def generation(self) -> Iterator[None]:
        """Count a generation running on this replica."""
        self.generations += 1
        try:
            yield
        finally:
            self.generations -= 1
