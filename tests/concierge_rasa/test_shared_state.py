"""concierge_rasa/shared_state.py against the real local Redis: two objects built as two replicas build
them (same settings, separate instances and connections) share rate limits, the replay cache and the
numbered options; without CONCIERGE_SHARED_REDIS_URL everything stays in memory, as before."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from concierge_rasa.channels.webhooks import OptionMemory, ReplayGuard
from concierge_rasa.settings import get_rasa_settings, load_rasa_settings
from concierge_rasa.shared_state import RedisRateLimiter, shared_store
from tests.requirements import require_redis

DB = 0  # every test has its own key prefix


def _forget_settings() -> None:
    get_rasa_settings.cache_clear()
    shared_store.cache_clear()


@pytest.fixture()
def shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    require_redis("the replicas' shared state lives in it")
    prefix = f"sharedtest:{uuid.uuid4().hex[:10]}:"
    monkeypatch.setenv("CONCIERGE_SHARED_REDIS_URL", f"redis://127.0.0.1:6379/{DB}")
    monkeypatch.setenv("CONCIERGE_SHARED_REDIS_PREFIX", prefix)
    _forget_settings()
    yield prefix
    _forget_settings()
    r = redis.Redis(db=DB)
    stale = list(r.scan_iter(match=f"{prefix}*"))
    if stale:
        r.delete(*stale)
    r.close()


def _replica_limits(env: dict[str, str]):  # noqa: ANN202 - RequestLimits
    return load_rasa_settings(env).request_limits()


def test_a_sender_limit_holds_across_replicas(shared: str) -> None:
    env = {"CONCIERGE_SHARED_REDIS_URL": f"redis://127.0.0.1:6379/{DB}", "CONCIERGE_SHARED_REDIS_PREFIX": shared,
           "CONCIERGE_RATE_SENDER_PER_MIN": "1", "CONCIERGE_RATE_SENDER_BURST": "3"}
    a, b = _replica_limits(env), _replica_limits(env)
    assert isinstance(a.sender, RedisRateLimiter)
    assert [a.check("rest:me", None), b.check("rest:me", None), a.check("rest:me", None)] == [0, 0, 0]
    assert b.check("rest:me", None) > 0 and a.check("rest:me", None) > 0  # the 4th, on either replica
    assert a.check("rest:someone-else", None) == 0


def test_without_the_setting_each_process_counts_its_own() -> None:
    # the settings are given here, not read from the environment
    env = {"CONCIERGE_RATE_SENDER_PER_MIN": "1", "CONCIERGE_RATE_SENDER_BURST": "1"}
    a, b = _replica_limits(env), _replica_limits(env)
    assert not isinstance(a.sender, RedisRateLimiter)
    assert [a.check("rest:me", None), b.check("rest:me", None)] == [0, 0]
    assert a.check("rest:me", None) > 0


def test_a_replayed_request_is_refused_by_the_other_replica(shared: str) -> None:
    a, b = ReplayGuard(3600), ReplayGuard(3600)
    assert a.first_time("update-1") is True
    assert b.first_time("update-1") is False
    assert b.first_time("update-2") is True
    assert ReplayGuard(60).first_time("update-1") is True  # another window is another cache


def test_numbered_options_sent_by_one_replica_are_understood_by_the_other(shared: str) -> None:
    a, b = OptionMemory(), OptionMemory()
    a.remember("whatsapp:+15550001", [("Track an order", "/track_order"), ("Talk to a person", "/human")])
    assert b.pick("whatsapp:+15550001", "2", consume=True) == "/human"
    assert a.pick("whatsapp:+15550001", "2", consume=True) is None  # SMS options answer one message only
    a.remember("tg:1:x", [("Yes", "/affirm")])
    assert b.pick("tg:1:x", "yes") == "/affirm" and a.pick("tg:1:x", "yes") == "/affirm"  # kept unless consumed


def test_without_the_setting_options_and_replays_stay_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONCIERGE_SHARED_REDIS_URL", raising=False)
    _forget_settings()
    a, b = OptionMemory(), OptionMemory()
    a.remember("k", [("One", "/one")])
    assert b.pick("k", "1") is None and a.pick("k", "1") == "/one"
    assert ReplayGuard(60).first_time("x") and ReplayGuard(60).first_time("x")
