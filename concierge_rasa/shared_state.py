"""State the channels keep between requests, shared by every Rasa replica through Redis when
``CONCIERGE_SHARED_REDIS_URL`` is set: rate-limit buckets, the messaging replay cache and the
numbered options of SMS/WhatsApp/Telegram.

Why: each of these lived in one process's memory, so with two replicas a client got twice its rate,
a platform retry (or an attacker's replay) landing on the other replica was handled again, and an
SMS "2" answering options one replica sent meant nothing to the other. Without the setting nothing
changes (in memory, as before). Calls are synchronous and short (one round trip on the local
network); if Redis fails, the check lets the request through and logs it, as a limiter that took
the whole chat down with it would do more harm than the flood it guards against.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from typing import Optional

import redis
from redis.exceptions import RedisError

from concierge_rasa.limits import RateLimiter, RequestLimits
from concierge_rasa.settings import get_rasa_settings

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 2.0

# token bucket on Redis's own clock (replicas' clocks may differ); returns {allowed, tokens left}
_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class SharedStore:
    """One Redis connection pool and key prefix for everything the replicas share."""

    def __init__(self, url: str, prefix: str) -> None:
        self.red = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)
        self.prefix = prefix
        self._take = self.red.register_script(_TAKE)

    def take(self, bucket: str, per_second: float, burst: int, cost: float) -> tuple[bool, float]:
        """(allowed, tokens left) of one token bucket, changed atomically."""
        allowed, tokens = self._take(keys=[self.prefix + bucket], args=[per_second, burst, cost])
        return bool(allowed), float(tokens)

    def tokens(self, bucket: str, burst: int) -> float:
        raw = self.red.hget(self.prefix + bucket, "tokens")
        return float(raw) if raw is not None else float(burst)

    def first_time(self, key: str, ttl_s: float) -> bool:
        """True (and remembered for ``ttl_s``) the first time any replica sees ``key``."""
        return bool(self.red.set(self.prefix + key, b"1", nx=True, px=max(1, math.ceil(ttl_s * 1000))))

    def put_json(self, key: str, value: object, ttl_s: float) -> None:
        self.red.set(self.prefix + key, json.dumps(value), px=max(1, math.ceil(ttl_s * 1000)))

    def get_json(self, key: str, *, delete: bool = False) -> object:
        raw = self.red.getdel(self.prefix + key) if delete else self.red.get(self.prefix + key)
        return json.loads(raw) if raw is not None else None


@functools.lru_cache(maxsize=1)
def shared_store() -> Optional[SharedStore]:
    """The process's shared store, or None when CONCIERGE_SHARED_REDIS_URL is not set (in memory)."""
    settings = get_rasa_settings()
    if not settings.shared_redis_url:
        return None
    return SharedStore(settings.shared_redis_url, settings.shared_redis_prefix)


class RedisRateLimiter(RateLimiter):
    """``RateLimiter`` whose buckets live in Redis, so the limit holds across replicas."""

    def __init__(self, limiter: RateLimiter, store: SharedStore, name: str) -> None:
        super().__init__(limiter.rate, limiter.max_keys)
        self.store, self.name = store, name

    def allow(self, key: Optional[str], cost: float = 1.0) -> bool:
        if not self.enabled or not key:
            return True
        try:
            allowed, _ = self.store.take(f"rate:{self.name}:{key}", self.rate.per_minute / 60.0, self.rate.burst, cost)
        except RedisError:
            logger.warning("Rate limit not checked: Redis is unreachable", exc_info=True)
            return True
        return allowed

    def retry_after(self, key: Optional[str]) -> int:
        if not self.enabled or not key:
            return 0
        try:
            tokens = self.store.tokens(f"rate:{self.name}:{key}", self.rate.burst)
        except RedisError:
            return 1
        return max(1, int(max(0.0, 1.0 - tokens) / (self.rate.per_minute / 60.0)) + 1)


def shared_limits(limits: RequestLimits, store: SharedStore) -> RequestLimits:
    """The same limits with their buckets in Redis."""
    limits.sender = RedisRateLimiter(limits.sender, store, "sender")
    limits.client = RedisRateLimiter(limits.client, store, "client")
    return limits
