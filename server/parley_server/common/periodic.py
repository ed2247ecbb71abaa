"""Background work repeated on a fixed interval for as long as the process serves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(interval: float, action: Callable[[], Awaitable[object]], what: str) -> None:
    """Await action every interval seconds until cancelled.

    A failed round is logged and the next one runs as planned: a database
    that is briefly away must not end the background work for good.
    """
    while True:
        await asyncio.sleep(interval)
        try:
            await action()
        except Exception:
            log.exception("%s failed; trying again in %s s", what, interval)
