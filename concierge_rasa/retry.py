"""Waiting through a restart of a part a turn needs (PostgreSQL, Redis) instead of failing the turn.

Why one place: the tracker store and the lock store both retry while their server is unreachable,
with the same growing pause, and on the event loop, so other conversations go on meanwhile.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


async def while_unreachable(
    call: Callable[[], Any], unreachable: Callable[[BaseException], bool], within_s: float, what: str
) -> Any:
    """``call()`` (sync, or returning an awaitable), tried again with a growing pause (up to a second)
    while ``unreachable(error)`` says the server could not be reached, for at most ``within_s`` seconds;
    then, or on any other error, the error is raised."""
    loop = asyncio.get_running_loop()
    deadline, attempt = loop.time() + within_s, 0
    while True:
        try:
            result = call()
            return await result if inspect.isawaitable(result) else result
        except Exception as exc:
            if not unreachable(exc) or loop.time() >= deadline:
                raise
            attempt += 1
            logger.warning("%s: server unreachable (%s), retrying", what, type(exc).__name__)
            await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
