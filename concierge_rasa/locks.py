"""A Redis lock store that stays correct with several Rasa replicas (``lock_store: type:
concierge_rasa.locks.AtomicRedisLockStore`` in deploy/production/endpoints.yml).

Why: Rasa 3.6's ``RedisLockStore`` GETs the conversation's ticket lock (JSON), changes it in Python
and SETs it back. Two replicas issuing a ticket at once both read the same lock, both hand out the
same number, and the later SET drops the other's ticket: both then process the same conversation at
once (interleaved turns, events lost when their trackers are saved). ``cleanup`` may also delete a
ticket issued between its "anyone waiting?" check and its DELETE.

Here every change is one optimistic transaction (WATCH the key, read, change with Rasa's own
``TicketLock``, MULTI/SET/EXEC; retried when another client changed the key in between), so Rasa's
ticket semantics are kept exactly: numbers in order per conversation, served first in first out,
each ticket expiring after its lifetime. The key also expires when its last ticket does, so a
replica that died holding a ticket never blocks the conversation for longer than that.

While Redis is unreachable (a restart, a failover) a turn waits for it, up to ``unreachable_retry_s``
(endpoints.yml, default 15 s), instead of failing: Rasa's store raised at once and the customer got the
apology for every turn in flight (issue 23's Redis restart under load).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, Optional, TypeVar

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from concierge_rasa.retry import while_unreachable

logger = logging.getLogger(__name__)

DEFAULT_POLL_S = 0.05  # Rasa polls every second: a queued message waited a second for nothing
DEFAULT_UNREACHABLE_RETRY_S = 15.0
T = TypeVar("T")


def _unreachable(exc: BaseException) -> bool:
    """Redis could not be reached (refused, reset, timed out, still loading its data): worth a retry."""
    if isinstance(exc, LockError):  # issue_ticket wraps Redis's error
        exc = exc.__cause__
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's Redis ticket lock with every read-modify-write done as one Redis transaction.

    Same keys and JSON as ``RedisLockStore`` (``<key_prefix>:lock:<conversation id>``), so the two
    can be swapped while no conversation is being handled. ``poll_interval_s`` (endpoints.yml) is
    how often a waiting message looks whether its turn has come.
    """

    def __init__(
        self, endpoint_config: Optional[EndpointConfig] = None, *, poll_interval_s: float = DEFAULT_POLL_S,
        unreachable_retry_s: float = DEFAULT_UNREACHABLE_RETRY_S, **kwargs: Any,
    ) -> None:
        if endpoint_config is not None:  # Rasa builds custom lock stores as cls(endpoint_config=...)
            options = dict(endpoint_config.kwargs)
            poll_interval_s = float(options.pop("poll_interval_s", poll_interval_s))
            unreachable_retry_s = float(options.pop("unreachable_retry_s", unreachable_retry_s))
            kwargs = {"host": endpoint_config.url or "localhost", **options, **kwargs}
        super().__init__(**kwargs)
        self.poll_interval_s = poll_interval_s
        self.unreachable_retry_s = unreachable_retry_s

    async def _when_reachable(self, call: Callable[[], Any]) -> Any:
        """``call()`` (sync or a coroutine function), tried again while Redis is unreachable, up to
        ``unreachable_retry_s``; waits on the event loop, so other conversations go on meanwhile."""
        return await while_unreachable(call, _unreachable, self.unreachable_retry_s, "lock store")

    def _key(self, conversation_id: str) -> str:
        return self.key_prefix + conversation_id

    def _read_for_update(self, pipe: redis.client.Pipeline, conversation_id: str) -> Optional[TicketLock]:
        """The lock as stored, read under WATCH (a separate method so tests can interleave two readers)."""
        raw = pipe.get(self._key(conversation_id))
        return TicketLock.from_dict(json.loads(raw)) if raw else None

    def _change(
        self, conversation_id: str, change: Callable[[Optional[TicketLock]], tuple[Optional[TicketLock], T]]
    ) -> T:
        """Applies ``change`` (old lock -> new lock or None to delete, result) atomically; retries on conflict."""
        key = self._key(conversation_id)
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    lock, result = change(self._read_for_update(pipe, conversation_id))
                    pipe.multi()
                    self._write(pipe, lock, key)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another replica changed the lock between our read and write: read again

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Next ticket of the conversation (Rasa's numbering), never the same number twice."""

        def issue(lock: Optional[TicketLock]) -> tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, issue)
        except redis.RedisError as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    def update_lock(self, conversation_id: str) -> None:
        """Drops expired tickets without dropping one issued meanwhile."""

        def drop_expired(lock: Optional[TicketLock]) -> tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, drop_expired)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        """Removes the ticket; the key goes with the last ticket (Rasa's cleanup, in one step)."""

        def remove(lock: Optional[TicketLock]) -> tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, remove)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Rasa's cleanup checked "anyone waiting?" then deleted: a ticket issued in between was lost."""
        self.finish_serving(conversation_id, ticket_number)

    @staticmethod
    def _write(client: Any, lock: Optional[TicketLock], key: str) -> None:
        """Stores the lock until its last ticket expires, or deletes the key when no ticket is left."""
        if lock is None or not lock.tickets:
            client.delete(key)
        else:
            expires = max(t.expires for t in lock.tickets)
            client.set(key, lock.dumps(), pxat=max(1, math.ceil(expires * 1000)))

    def save_lock(self, lock: TicketLock) -> None:
        """Whole-lock writes (Rasa's base methods) keep the key's expiry like every other write."""
        self._write(self.red, lock, self._key(lock.conversation_id))

    @asynccontextmanager
    async def lock(
        self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME, wait_time_in_seconds: Optional[float] = None
    ) -> AsyncGenerator[TicketLock, None]:
        """Rasa's ticket lock; waits ``poll_interval_s`` between looks unless the caller says otherwise."""
        ticket = await self._when_reachable(lambda: self.issue_ticket(conversation_id, lock_lifetime))
        try:
            wait = self.poll_interval_s if wait_time_in_seconds is None else wait_time_in_seconds
            yield await self._when_reachable(lambda: self._acquire_lock(conversation_id, ticket, wait))
        finally:
            try:
                await self._when_reachable(lambda: self.cleanup(conversation_id, ticket))
            except (LockError, redis.RedisError):  # the turn is done and stored: the ticket expires on its own
                logger.exception("lock store: ticket %s of %s not removed; it expires after its lifetime",
                                 ticket, conversation_id)

