"""The current time, timezone-aware, in one place so every module agrees on UTC."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
