"""The current time, timezone-aware, in one place so every module agrees on UTC."""

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_epoch_us(microseconds: int) -> datetime:
    """The time `microseconds` after the Unix epoch, exactly (no float on the way)."""
    return EPOCH + timedelta(microseconds=microseconds)
