"""concierge_rasa/locks.py against the real local Redis: tickets stay unique and turns exclusive when
several clients (threads, processes: stand-ins for Rasa replicas) race on one conversation.

The interleavings that break Rasa's stock ``RedisLockStore`` are forced with barriers, not hoped for
with timing: two clients both read the lock before either writes it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockStore, RedisLockStore
from rasa.core.utils import read_endpoints_from_path

from concierge_rasa.locks import AtomicRedisLockStore
from tests.requirements import REDIS, require_redis

ROOT = Path(__file__).resolve().parents[2]
DB = 0  # every run has its own key prefix, so runs sharing a DB never meet


@pytest.fixture()
def prefix() -> Iterator[str]:
    require_redis()
    prefix = f"locktest{uuid.uuid4().hex[:10]}"
    yield prefix
    r = redis.Redis(db=DB)
    stale = list(r.scan_iter(match=f"{prefix}*"))
    if stale:
        r.delete(*stale)
    r.close()


def _in_threads(n: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]
    return results


class StockBothRead(RedisLockStore):
    """Rasa's store, where two clients' first reads both happen before either writes."""

    def __init__(self, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier, self.seen = barrier, threading.local()

    def get_lock(self, conversation_id: str) -> Optional[TicketLock]:
        lock = super().get_lock(conversation_id)
        if not getattr(self.seen, "done", False):
            self.seen.done = True
            self.barrier.wait(timeout=10)
        return lock


class AtomicBothRead(AtomicRedisLockStore):
    """The atomic store with the same forced interleaving of the first reads."""

    def __init__(self, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier, self.seen = barrier, threading.local()

    def _read_for_update(self, pipe: Any, conversation_id: str) -> Optional[TicketLock]:
        lock = super()._read_for_update(pipe, conversation_id)
        if not getattr(self.seen, "done", False):
            self.seen.done = True
            self.barrier.wait(timeout=10)
        return lock


def test_stock_redis_lock_store_hands_out_one_ticket_twice(prefix: str) -> None:
    """The defect this module exists for, shown deterministically on Rasa's own class."""
    store = StockBothRead(threading.Barrier(2), db=DB, key_prefix=prefix)
    tickets = _in_threads(2, lambda _: store.issue_ticket("conv"))
    assert tickets == [0, 0]  # both replicas would now process the conversation at once
    assert len(RedisLockStore.get_lock(store, "conv").tickets) == 1  # and one ticket was overwritten


def test_atomic_store_hands_out_distinct_tickets_under_the_same_interleaving(prefix: str) -> None:
    store = AtomicBothRead(threading.Barrier(2), db=DB, key_prefix=prefix)
    tickets = _in_threads(2, lambda _: store.issue_ticket("conv"))
    assert sorted(tickets) == [0, 1]
    assert [t.number for t in store.get_lock("conv").tickets] == [0, 1]


def test_tickets_are_served_first_in_first_out_and_the_key_goes_with_the_last(prefix: str) -> None:
    store = AtomicRedisLockStore(db=DB, key_prefix=prefix)
    first, second, third = (store.issue_ticket("conv", 60) for _ in range(3))
    assert (first, second, third) == (0, 1, 2)
    assert not store.get_lock("conv").is_locked(first)
    assert store.get_lock("conv").is_locked(second)
    store.cleanup("conv", first)
    assert not store.get_lock("conv").is_locked(second) and store.get_lock("conv").is_locked(third)
    store.cleanup("conv", second)
    store.cleanup("conv", third)
    assert store.get_lock("conv") is None
    assert not store.red.exists(store.key_prefix + "conv")


def test_the_key_expires_with_its_last_ticket(prefix: str) -> None:
    """A replica that died holding a ticket blocks the conversation for its lifetime, not forever."""
    store = AtomicRedisLockStore(db=DB, key_prefix=prefix)
    store.issue_ticket("conv", 30)
    ttl_ms = store.red.pttl(store.key_prefix + "conv")
    assert 0 < ttl_ms <= 30_001  # the expiry in whole milliseconds, rounded up
    store.issue_ticket("dead", -1)  # already expired: nothing is kept
    assert store.get_lock("dead") is None


def test_expired_tickets_are_dropped_without_dropping_a_live_one(prefix: str) -> None:
    store = AtomicRedisLockStore(db=DB, key_prefix=prefix)
    live = store.issue_ticket("conv", 60)
    store.red.set(  # an expired ticket in front of it, as a crashed replica leaves one
        store.key_prefix + "conv",
        TicketLock.from_dict(
            {"conversation_id": "conv", "tickets": ['{"number": 0, "expires": 1}', f'{{"number": {live + 1}, '
                                                   f'"expires": 9999999999}}']}
        ).dumps(),
    )
    store.update_lock("conv")
    assert [t.number for t in store.get_lock("conv").tickets] == [live + 1]


def _count_under_lock(prefix: str, rounds: int, start: Any) -> None:
    """One 'replica': ``rounds`` non-atomic increments of a shared counter, each under the lock."""
    store = AtomicRedisLockStore(db=DB, key_prefix=prefix, poll_interval_s=0.001)
    counter, inside = f"{prefix}:counter", f"{prefix}:inside"

    async def main() -> None:
        for _ in range(rounds):
            async with store.lock("conv"):
                assert store.red.incr(inside) == 1, "two holders of one conversation's lock"
                value = int(store.red.get(counter) or 0)
                await asyncio.sleep(0)  # let the event loop (and the other processes) run mid-turn
                store.red.set(counter, value + 1)
                store.red.decr(inside)

    start.wait(timeout=30)
    asyncio.run(main())


def test_processes_racing_on_one_conversation_take_turns(prefix: str) -> None:
    """Four processes, 25 turns each on one conversation: every increment kept, never two holders."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_count_under_lock, args=(prefix, 25, start)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert int(redis.Redis(db=DB).get(f"{prefix}:counter")) == 100


def test_the_production_endpoints_load_this_store(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/production/endpoints.yml as Rasa reads it (env vars filled in) builds the atomic store."""
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_DB": str(DB), "TRACKER_DB_PORT": "5432",
           "RABBITMQ_PORT": "5672", "ACTION_ENDPOINT_URL": "http://127.0.0.1:1/webhook"}
    for name in ("CONCIERGE_ACTION_TOKEN", "TRACKER_DB_HOST", "TRACKER_DB_NAME", "TRACKER_DB_USER",
                 "TRACKER_DB_PASSWORD", "RABBITMQ_HOST", "RABBITMQ_USER", "RABBITMQ_PASSWORD", "RABBITMQ_QUEUE"):
        env[name] = "x"  # the other sections are only read here, nothing connects to them
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    endpoints = read_endpoints_from_path(ROOT / "deploy" / "production" / "endpoints.yml")
    store = LockStore.create(endpoints.lock_store)
    assert type(store) is AtomicRedisLockStore
    assert store.key_prefix == "concierge:lock:"
    assert store.red.ping()


# ------------------------------------------------------------------ Redis restarts
def test_a_turn_waits_through_a_redis_restart_instead_of_failing(prefix: str) -> None:
    """Redis goes away as a turn asks for its ticket (issue 23's restart under load): the turn waits,
    gets its ticket when Redis is back, and its ticket is removed afterwards. Rasa's store raised."""
    from tests.faults import TcpProxy

    async def play() -> tuple[bool, bool, list[bytes]]:
        with TcpProxy(REDIS) as proxy:
            store = AtomicRedisLockStore(host="127.0.0.1", port=proxy.port, db=DB, key_prefix=prefix)
            async with store.lock("c1"):
                pass  # a first turn opens the connection
            proxy.cut()

            async def turn() -> bool:
                async with store.lock("c1"):
                    return True

            task = asyncio.ensure_future(turn())
            await asyncio.sleep(0.8)
            waited = not task.done()
            proxy.restore()
            served = await asyncio.wait_for(task, timeout=30)
            left = list(redis.Redis(db=DB).scan_iter(match=f"{prefix}*"))
            store.red.close()
            return waited, served, left

    waited, served, left = asyncio.run(play())
    assert waited and served
    assert left == []  # the ticket went with the turn


def test_a_turn_fails_when_redis_stays_away(prefix: str) -> None:
    from rasa.core.lock_store import LockError

    from tests.faults import TcpProxy

    async def play() -> None:
        with TcpProxy(REDIS) as proxy:
            store = AtomicRedisLockStore(host="127.0.0.1", port=proxy.port, db=DB, key_prefix=prefix,
                                         unreachable_retry_s=0.3)
            proxy.cut()
            try:
                async with store.lock("c2"):
                    pass
            finally:
                store.red.close()

    with pytest.raises(LockError):
        asyncio.run(play())
