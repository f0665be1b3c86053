"""Rate limits on the grab: a person's burst, an address's burst, and what the tables keep."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xfq.api.ratelimit import Buckets, RateLimiter

T0 = 1_646_445_600.0  # 2022-03-05 10:00 Asia/Shanghai, in Unix seconds
PERSON_RATE, PERSON_BURST = 2.0, 6  # the settings' defaults


class PlainBuckets:
    """The token bucket as first written: (tokens, at) per key, never forgotten."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now_s: float) -> float | None:
        tokens, at_s = self.state.get(key, (float(self.burst), now_s))
        tokens = min(float(self.burst), tokens + (now_s - at_s) * self.rate_per_s)
        if tokens < 1.0:
            self.state[key] = (tokens, now_s)
            return (1.0 - tokens) / self.rate_per_s
        self.state[key] = (tokens - 1.0, now_s)
        return None


def test_a_person_gets_their_burst_then_waits_for_the_next_token() -> None:
    buckets = Buckets(PERSON_RATE, PERSON_BURST)

    answers = [buckets.take("alice", T0) for _ in range(PERSON_BURST + 1)]

    assert answers[:PERSON_BURST] == [None] * PERSON_BURST
    assert answers[PERSON_BURST] == pytest.approx(1 / PERSON_RATE)
    assert buckets.take("bob", T0) is None  # another person has a burst of their own
    assert buckets.take("alice", T0 + 0.49) is not None
    assert buckets.take("alice", T0 + 0.5) is None
    assert buckets.take("alice", T0 + 0.5) is not None


def test_a_refused_request_does_not_shorten_the_wait() -> None:
    buckets = Buckets(PERSON_RATE, PERSON_BURST)
    for _ in range(PERSON_BURST):
        buckets.take("alice", T0)

    waits = [buckets.take("alice", T0 + s) for s in (0.1, 0.2, 0.3)]

    assert waits == [pytest.approx(0.4), pytest.approx(0.3), pytest.approx(0.2)]


def test_an_address_is_limited_whoever_claims_from_it() -> None:
    limiter = RateLimiter(Buckets(PERSON_RATE, PERSON_BURST), Buckets(64.0, 3))
    now = datetime(2022, 3, 5, 2, 0, tzinfo=UTC)

    answers = [limiter.check(f"p{i}", "10.0.0.7", now) for i in range(4)]

    assert answers[:3] == [None, None, None]
    assert answers[3] == pytest.approx(1 / 64)
    assert limiter.check("p9", "10.0.0.8", now) is None
    assert limiter.check("p9", "10.0.0.7", now + timedelta(microseconds=15_625)) is None


def test_a_person_refused_by_the_address_keeps_their_own_tokens() -> None:
    limiter = RateLimiter(Buckets(PERSON_RATE, 1), Buckets(100.0, 1))
    now = datetime(2022, 3, 5, 2, 0, tzinfo=UTC)
    assert limiter.check("alice", "10.0.0.7", now) is None

    assert limiter.check("bob", "10.0.0.7", now) is not None  # the address's burst is spent
    assert limiter.check("bob", "10.0.0.8", now) is None  # bob's own was not taken


# Gaps of whole 1/64 s and rates of powers of two: both sides compute exactly, so they must agree
# exactly, even on the boundaries (a request arriving the instant its token is back).
gaps = st.one_of(st.integers(0, 16), st.integers(0, 256)).map(lambda n: n / 64)
moments = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), gaps), max_size=120)


@settings(max_examples=500, deadline=None)
@given(moments, st.sampled_from([(2.0, 6), (2048.0, 4096), (0.5, 1), (4.0, 2), (1.0, 3)]))
def test_forgetting_changes_no_answer(
    steps: list[tuple[str, float]], limits: tuple[float, int]
) -> None:
    """The kept buckets answer every request as a token bucket that remembers every key."""
    rate, burst = limits
    kept, plain = Buckets(rate, burst, max_tracked=1_000_000), PlainBuckets(rate, burst)
    now_s = T0
    for key, gap_s in steps:
        now_s += gap_s
        expected = plain.take(key, now_s)
        got = kept.take(key, now_s)
        assert (got is None) == (expected is None), (key, now_s)
        if expected is not None:
            assert got == pytest.approx(expected)


def test_a_person_drained_late_in_a_generation_is_still_limited_in_the_next() -> None:
    buckets = Buckets(PERSON_RATE, PERSON_BURST)  # generations of 3 s
    buckets.take("bob", T0)  # the first generation begins
    for _ in range(PERSON_BURST):
        buckets.take("alice", T0 + 2.875)  # full again at T0 + 5.875
    buckets.take("bob", T0 + 3.0)  # the next generation: alice's bucket is in the previous one

    assert buckets.take("alice", T0 + 3.125) == pytest.approx(0.25)
    assert buckets.take("alice", T0 + 3.375) is None
    assert buckets.take("alice", T0 + 3.375) is not None


def test_people_who_stopped_claiming_are_forgotten_after_two_refill_times() -> None:
    buckets = Buckets(PERSON_RATE, PERSON_BURST)  # full again 3 s after the last request
    for i in range(10_000):
        buckets.take(f"p{i:07d}", T0)

    buckets.take("late", T0 + 3.0)
    kept_after_one_refill = len(buckets)
    buckets.take("later", T0 + 6.0)

    assert kept_after_one_refill == 10_001  # still draining when last seen: kept
    assert len(buckets) == 2  # "late" (refilling) and "later"


def test_more_people_at_once_than_the_last_resort_are_bounded_and_the_latest_kept() -> None:
    buckets = Buckets(PERSON_RATE, 1, max_tracked=1_000)  # the clock stands still
    for i in range(5_000):
        assert buckets.take(f"p{i:07d}", T0) is None

    assert len(buckets) <= 2_000
    latest = [buckets.take(f"p{i:07d}", T0) for i in range(4_000, 5_000)]
    assert None not in latest  # the last 1,000 people are still refused a second request


def test_a_hundred_thousand_draining_buckets_take_under_6_mb() -> None:
    """The server's clock standing still (a rehearsal) keeps every bucket: this is their cost.
    The ids are not kept (an OrderedDict of (tokens, at) tuples by id took ~23 MB)."""
    people = 100_000
    buckets = Buckets(PERSON_RATE, PERSON_BURST)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(people):
            assert buckets.take(f"p{i:07d}", T0) is None
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert len(buckets) == people
    assert held < 6 * 2**20, f"{held / people:.0f} bytes a person"
    assert all(buckets.take(f"p{i:07d}", T0) is None for i in range(0, people, 97))
