"""Token buckets per person and per source address on the grab, bounded in memory."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

MAX_TRACKED = 1_000_000  # keys kept per bucket table; the oldest are forgotten first


class Buckets:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        assert rate_per_s > 0 and burst >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at_s)

    def take(self, key: str, now_s: float) -> float | None:
        """None if a request may pass now, else the seconds to wait."""
        tokens, at_s = self._state.pop(key, (float(self.burst), now_s))
        tokens = min(float(self.burst), tokens + (now_s - at_s) * self.rate_per_s)
        if tokens < 1.0:
            self._state[key] = (tokens, now_s)
            return (1.0 - tokens) / self.rate_per_s
        self._state[key] = (tokens - 1.0, now_s)
        if len(self._state) > MAX_TRACKED:
            self._state.popitem(last=False)
        return None


class RateLimiter:
    def __init__(self, per_person: Buckets, per_address: Buckets) -> None:
        self.per_person = per_person
        self.per_address = per_address

    def check(self, person: str, address: str, now: datetime) -> float | None:
        now_s = now.timestamp()
        wait = self.per_address.take(address, now_s)
        if wait is not None:
            return wait
        return self.per_person.take(person, now_s)
