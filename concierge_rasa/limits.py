"""Request rate limits per sender and per client address (standard library only).

Why: the public endpoints (REST, socket.io, messaging webhooks, the console's login) must not
let one client flood the assistant, the NLU or the database. A token bucket per key allows a
short burst and then a steady rate; memory stays bounded (least recently used keys are
forgotten first). Limits are per process: with several Rasa replicas each one counts its own.

Standard library only, so both runtimes use it: the Rasa channels and the web app (``bot``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

POLITE_SLOW_DOWN = (
    "You're sending messages faster than I can answer. Please wait a few seconds and try again."
)


@dataclass(frozen=True)
class Rate:
    """``per_minute`` requests a minute on average, with bursts of up to ``burst``."""

    per_minute: float
    burst: int

    @classmethod
    def from_env(cls, name: str, per_minute: float, burst: int, env: Mapping[str, str]) -> Rate:
        """``<NAME>_PER_MIN`` and ``<NAME>_BURST`` from these settings values (0 per minute = no limit).

        ``env`` comes from ``concierge_rasa.settings`` (the one reader of os.environ) or a test.
        """

        def number(key: str, default: float) -> float:
            raw = (env.get(key) or "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError as exc:
                raise ValueError(f"{key} must be a number") from exc
            if value < 0:
                raise ValueError(f"{key} must not be negative")
            return value

        return cls(number(f"{name}_PER_MIN", per_minute), max(1, int(number(f"{name}_BURST", burst))))


class RateLimiter:
    """Token buckets keyed by sender, client address, ...; ``allow(key)`` says whether to serve."""

    def __init__(self, rate: Rate, max_keys: int = 50_000, clock=time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate.per_minute > 0

    def allow(self, key: Optional[str], cost: float = 1.0) -> bool:
        """Takes ``cost`` from ``key``'s bucket; False (nothing taken) when it is empty."""
        if not self.enabled or not key:
            return True
        now = self._clock()
        refill = self.rate.per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.rate.burst), now))
            tokens = min(float(self.rate.burst), tokens + (now - last) * refill)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, key: Optional[str]) -> int:
        """Whole seconds until ``key`` may send again (at least 1)."""
        if not self.enabled or not key:
            return 0
        with self._lock:
            tokens, _ = self._buckets.get(key, (float(self.rate.burst), 0.0))
        missing = max(0.0, 1.0 - tokens)
        return max(1, int(missing / (self.rate.per_minute / 60.0)) + 1)


class RequestLimits:
    """The two limits every public endpoint applies: per sender and per client address."""

    def __init__(self, sender: Rate, client: Rate) -> None:
        self.sender = RateLimiter(sender)
        self.client = RateLimiter(client)

    @classmethod
    def from_env(cls, prefix: str = "CONCIERGE_RATE", *, env: Mapping[str, str]) -> RequestLimits:
        """CONCIERGE_RATE_SENDER_PER_MIN/_BURST (default 30/min, burst 10) and
        CONCIERGE_RATE_CLIENT_PER_MIN/_BURST (default 120/min, burst 40)."""
        return cls(
            Rate.from_env(f"{prefix}_SENDER", 30, 10, env),
            Rate.from_env(f"{prefix}_CLIENT", 120, 40, env),
        )

    def check(self, sender: Optional[str], client: Optional[str]) -> int:
        """0 when the request may go on; otherwise the seconds to wait (nothing is counted twice)."""
        if not self.client.allow(f"c|{client}" if client else None):
            return self.client.retry_after(f"c|{client}")
        if not self.sender.allow(f"s|{sender}" if sender else None):
            return self.sender.retry_after(f"s|{sender}")
        return 0
