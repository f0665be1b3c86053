"""Token buckets per person and per source address on the grab, kept only while they matter.

A bucket is stored as one number, the moment it will be full again (`full_at_s`): its tokens
at `now_s` are `burst - (full_at_s - now_s) * rate`, at most `burst`. A bucket left alone for
`burst / rate` seconds is full, the same as a fresh one, so it need not be kept at all.

The table is two generations of that length (the refill time): a bucket taken from moves into
the current one; when a generation is over, the previous one is dropped. Every bucket in it was
last taken from at least one refill time ago, so each was full: forgetting it changes no answer.
What a table holds is the keys seen in the last two refill times (6 s per person, 4 s per
address with the default settings), whatever the number of people in the city.
"""

from __future__ import annotations

from datetime import datetime

# Buckets a generation holds at most: a last resort against more distinct keys within a refill
# time than a process could serve (or a clock standing still, as in `xfq rehearse`). Reaching it
# starts a new generation early, so a bucket still draining is forgotten only once this many
# other keys came after it, never sooner. Both generations together: twice this at most.
MAX_TRACKED = 1_000_000


class Buckets:
    def __init__(self, rate_per_s: float, burst: int, max_tracked: int = MAX_TRACKED) -> None:
        assert rate_per_s > 0 and burst >= 1 and max_tracked >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.refill_s = burst / rate_per_s  # from empty to full
        self._max_per_generation = max_tracked
        # Moments are kept as seconds since the first request: a Unix timestamp's float
        # resolution (~0.2 µs) would blur the sums of `1 / rate` that make up `full_at_s`.
        self._origin_s: float | None = None
        self._started_s = 0.0  # when the current generation began
        self._current: dict[str, float] = {}  # key -> full_at_s
        self._previous: dict[str, float] = {}

    def take(self, key: str, now_s: float) -> float | None:
        """None if a request may pass now, else the seconds to wait."""
        if self._origin_s is None:
            self._origin_s = now_s
        now_s -= self._origin_s
        self._turn(now_s)
        full_at_s = self._current.get(key)
        if full_at_s is None:
            full_at_s = self._previous.pop(key, now_s)
        tokens = min(float(self.burst), self.burst - (full_at_s - now_s) * self.rate_per_s)
        if tokens < 1.0:
            self._current[key] = full_at_s
            return (1.0 - tokens) / self.rate_per_s
        self._current[key] = max(full_at_s, now_s) + 1.0 / self.rate_per_s
        return None

    def __len__(self) -> int:
        """Buckets kept (not every one of them need still be draining)."""
        return len(self._current) + len(self._previous)

    def _turn(self, now_s: float) -> None:
        """A new generation once the current one is a refill time old (or holds its most)."""
        age_s = now_s - self._started_s
        if age_s >= self.refill_s or len(self._current) >= self._max_per_generation:
            # after two refill times of quiet, the current generation's buckets are full too
            self._previous = self._current if age_s < 2 * self.refill_s else {}
            self._current = {}
            self._started_s = now_s


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
