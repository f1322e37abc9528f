"""Several requests in one message, for every channel (issue 25; the rule is ``concierge_rasa/multi_request.py``).

The channels' shared handler asks ``split_message`` before Rasa sees a message. When it is two
requests, the first part goes to Rasa as the customer's message and the second waits in
``PendingRequests``; ``take_ready`` gives it back at the end of a turn after which no form (but the
rating question) is active and no person holds the conversation, so the guard hands it to Rasa as the
customer's next message: right after the first request, or once the form the first one opened is done
(finished, or stopped by the customer). Pending requests are kept in this process, or in Redis with
CONCIERGE_SHARED_REDIS_URL so the turn that ends the form may reach another replica.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Optional

from rasa.core.agent import Agent
from rasa.core.tracker_store import TrackerStore
from redis.exceptions import RedisError

from concierge_rasa.multi_request import separate_requests, split_points
from concierge_rasa.shared_state import shared_store

logger = logging.getLogger(__name__)

PENDING_TTL_S = 1800.0  # a second request not reached within half an hour is dropped
#: forms that do not hold a waiting request back: the rating question after a finished task says "or
#: just carry on with something else", and the waiting request is that something else
OPEN_TO_REQUESTS = frozenset({"csat_form"})


def running_agent() -> Optional[Agent]:
    """This process's Rasa agent (None before a model is loaded)."""
    from sanic import Sanic

    apps = list(Sanic._app_registry.values())  # the Rasa server's app (one per process)
    return next((a.ctx.agent for a in apps if getattr(a.ctx, "agent", None) is not None), None)


async def split_message(text: str, agent: Optional[Agent]) -> Optional[tuple[str, str]]:
    """(first request, second request) when ``text`` asks for two tasks of different flows, else None."""
    if agent is None or agent.processor is None:
        return None
    for first, second in split_points(text):
        try:
            if separate_requests(await agent.parse_message(first), await agent.parse_message(second)):
                return first, second
        except Exception:  # noqa: BLE001 - a failed parse leaves the message whole
            logger.exception("Could not parse a part of a message; it stays whole")
            return None
    return None


class PendingRequests:
    """The second request of a message, per conversation, until the first one is done."""

    def __init__(self, max_keys: int = 10_000, ttl_s: float = PENDING_TTL_S) -> None:
        self.max_keys = max_keys
        self.ttl_s = ttl_s
        self._local: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._shared = shared_store()

    def put(self, sender_id: str, text: str) -> None:
        """Only the text waits: the metadata (session, identity) comes with the message that frees it."""
        value = {"text": text}
        if self._shared is not None:
            try:
                self._shared.put_json(f"pending:{sender_id}", value, self.ttl_s)
                return
            except RedisError:
                logger.warning("Pending request not shared (Redis unreachable): kept in this process", exc_info=True)
        self._local.pop(sender_id, None)
        self._local[sender_id] = (time.monotonic() + self.ttl_s, value)
        while len(self._local) > self.max_keys:
            self._local.popitem(last=False)

    def peek(self, sender_id: str) -> bool:
        entry = self._local.get(sender_id)
        if entry is not None and entry[0] >= time.monotonic():
            return True
        if self._shared is not None:
            try:
                return self._shared.get_json(f"pending:{sender_id}") is not None
            except RedisError:
                logger.warning("Pending requests unreachable (Redis)", exc_info=True)
        return False

    def pop(self, sender_id: str) -> Optional[str]:
        entry = self._local.pop(sender_id, None)
        value: Any = None
        if entry is not None:
            value = entry[1] if entry[0] >= time.monotonic() else None
        elif self._shared is not None:
            try:
                value = self._shared.get_json(f"pending:{sender_id}", delete=True)
            except RedisError:
                logger.warning("Pending requests unreachable (Redis)", exc_info=True)
        text = value.get("text") if isinstance(value, dict) else None
        return text if isinstance(text, str) and text else None

    async def take_ready(self, sender_id: str, trackers: Optional[TrackerStore]) -> Optional[str]:
        """The waiting request when the conversation is free for it (no form, no person), else None.
        Asked only when one waits (the guard has looked: ``peek``)."""
        if trackers is None:
            return None
        try:
            tracker = await trackers.retrieve(sender_id)
        except Exception:  # noqa: BLE001 - unknown state: try again after the next turn
            logger.exception("Could not read the tracker of %s", sender_id)
            return None
        if tracker is None:
            return None
        if tracker.is_paused():
            self.pop(sender_id)  # a person has the conversation: they see the whole message
            return None
        if tracker.active_loop_name and tracker.active_loop_name not in OPEN_TO_REQUESTS:
            return None
        return self.pop(sender_id)


_pending: Optional[PendingRequests] = None


def pending_requests() -> PendingRequests:
    """The process's pending requests (built on first use, after the settings are read)."""
    global _pending
    if _pending is None:
        _pending = PendingRequests()
    return _pending

