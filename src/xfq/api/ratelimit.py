"""Token buckets per person and per source address on the grab, kept only while they matter.

A bucket is stored as one number, the moment it will be full again (`full_at_s`): its tokens
at `now_s` are `burst - (full_at_s - now_s) * rate`, at most `burst`. A bucket left alone for
`burst / rate` seconds is full, the same as a fresh one, so it need not be kept at all.

The table is two generations of that length (the refill time): a bucket taken from moves into
the current one; when a generation is over, the previous one is dropped. Every bucket in it was
last taken from at least one refill time ago, so each was full: forgetting it changes no answer.
What a table holds is the keys seen in the last two refill times (6 s per person, 4 s per
address with the default settings), whatever the number of people in the city.

A generation is two flat arrays (`_Moments`): the key's 64-bit hash and the moment, 32-64 bytes
a bucket where a dict of strings to floats took ~120 (and an OrderedDict of tuples ~230). Two
keys of the same hash would share one bucket: stricter for both, never looser; with the hash
keyed at random per process the chance is ~n² / 2^65 (3 in 100 million for a million keys
within one generation), and no one can aim for it (people's ids are signed by the identity
provider, addresses are the connection's).
"""

from __future__ import annotations

from array import array
from datetime import datetime

# Buckets a generation holds at most: a last resort against more distinct keys within a refill
# time than a process could serve (or a simulated clock standing still). Reaching it starts a
# new generation early, so a bucket still draining is forgotten only once this many other keys
# came after it, never sooner. Both generations together: twice this at most.
MAX_TRACKED = 1_000_000
_SMALLEST = 1024  # slots of an empty generation


class _Moments:
    """Key hash -> moment: open addressing with linear probing, never more than half full.

    Nothing is ever removed: a generation is dropped whole. Hash 0 marks an empty slot."""

    def __init__(self, slots: int = _SMALLEST) -> None:
        assert slots >= _SMALLEST and slots & (slots - 1) == 0, slots
        self._hashes, self._moments = _zeros(slots)
        self._mask = slots - 1
        self.count = 0

    def get(self, key_hash: int) -> float | None:
        slot = self._slot(key_hash)
        return self._moments[slot] if self._hashes[slot] == key_hash else None

    def put(self, key_hash: int, moment: float) -> None:
        slot = self._slot(key_hash)
        if self._hashes[slot] != key_hash:  # a new key
            if 2 * (self.count + 1) > len(self._hashes):
                self._grow()
                slot = self._slot(key_hash)
            self._hashes[slot] = key_hash
            self.count += 1
        self._moments[slot] = moment

    def _slot(self, key_hash: int) -> int:
        """Where the key is, or the empty slot where it would go."""
        hashes, mask = self._hashes, self._mask
        slot = key_hash & mask
        while hashes[slot] != key_hash and hashes[slot] != 0:
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        kept = zip(self._hashes, self._moments, strict=True)
        slots = 2 * len(self._hashes)
        self._hashes, self._moments = _zeros(slots)
        self._mask, self.count = slots - 1, 0
        for key_hash, moment in kept:
            if key_hash != 0:
                self.put(key_hash, moment)


def _zeros(slots: int) -> tuple[array[int], array[float]]:
    """Empty hashes and moments, made in place (no temporary as large as each)."""
    return array("Q", [0]) * slots, array("d", [0.0]) * slots


def slots_for(count: int) -> int:
    """The slots a generation of `count` keys takes (at most half full)."""
    slots = _SMALLEST
    while slots < 2 * count:
        slots *= 2
    return slots


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
        self._current = _Moments()  # key hash -> full_at_s
        self._previous = _Moments()

    def take(self, key: str, now_s: float) -> float | None:
        """None if a request may pass now, else the seconds to wait."""
        if self._origin_s is None:
            self._origin_s = now_s
        now_s -= self._origin_s
        self._turn(now_s)
        key_hash = self._hash(key)
        full_at_s = self._current.get(key_hash)
        if full_at_s is None:  # the previous generation's copy stays, hidden by the current one
            full_at_s = self._previous.get(key_hash)
        if full_at_s is None:
            full_at_s = now_s
        tokens = min(float(self.burst), self.burst - (full_at_s - now_s) * self.rate_per_s)
        if tokens < 1.0:
            self._current.put(key_hash, full_at_s)
            return (1.0 - tokens) / self.rate_per_s
        self._current.put(key_hash, max(full_at_s, now_s) + 1.0 / self.rate_per_s)
        return None

    def __len__(self) -> int:
        """Buckets kept (not every one of them need still be draining)."""
        return self._current.count + self._previous.count

    @staticmethod
    def _hash(key: str) -> int:
        """Python's string hash: keyed at random per process (unless PYTHONHASHSEED is set)."""
        return (hash(key) & 0xFFFF_FFFF_FFFF_FFFF) or 1  # 0 marks an empty slot

    def _turn(self, now_s: float) -> None:
        """A new generation once the current one is a refill time old (or holds its most)."""
        age_s = now_s - self._started_s
        if age_s >= self.refill_s or self._current.count >= self._max_per_generation:
            # after two refill times of quiet, the current generation's buckets are full too
            finished = self._current
            self._previous = finished if age_s < 2 * self.refill_s else _Moments()
            self._current = _Moments(slots_for(finished.count))  # sized as the last one was
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
