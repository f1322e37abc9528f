"""Token-bucket rate limits per sender and per client address."""

import pytest

from concierge_rasa.limits import Rate, RateLimiter, RequestLimits


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_steady_rate():
    clock = Clock()
    limiter = RateLimiter(Rate(per_minute=60, burst=3), clock=clock)
    assert [limiter.allow("k") for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after("k") >= 1
    clock.t += 1.0  # one token a second
    assert limiter.allow("k") and not limiter.allow("k")
    assert limiter.allow("other")  # keys are independent


def test_disabled_and_bounded_memory():
    assert all(RateLimiter(Rate(0, 1)).allow("k") for _ in range(100))
    limiter = RateLimiter(Rate(60, 1), max_keys=10)
    for i in range(100):
        limiter.allow(f"k{i}")
    assert len(limiter._buckets) == 10


def test_request_limits_from_env_sender_and_client():
    limits = RequestLimits.from_env(env={
        "CONCIERGE_RATE_SENDER_PER_MIN": "6", "CONCIERGE_RATE_SENDER_BURST": "2",
        "CONCIERGE_RATE_CLIENT_PER_MIN": "6", "CONCIERGE_RATE_CLIENT_BURST": "3",
    })
    assert limits.check("a", "ip:1") == 0 and limits.check("a", "ip:1") == 0
    assert limits.check("a", "ip:1") > 0  # sender a is out
    assert limits.check("b", "ip:1") > 0  # the address is out too (3 taken)
    assert limits.check("c", "ip:2") == 0
    with pytest.raises(ValueError, match="CONCIERGE_RATE_SENDER_PER_MIN"):
        RequestLimits.from_env(env={"CONCIERGE_RATE_SENDER_PER_MIN": "lots"})
