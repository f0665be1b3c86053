"""The dashboard's claims per second: each answer counted in the Unix second of its clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from xfq.api.claiming import ClaimStats

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPENING = datetime(2022, 3, 5, 10, 0, tzinfo=SHANGHAI)


@given(st.lists(st.integers(min_value=-3_000_000, max_value=3_000_000), max_size=60))
def test_every_answer_is_counted_in_its_own_second_in_any_order(offsets_us: list[int]) -> None:
    stats = ClaimStats()
    for offset in offsets_us:  # the clock may also step back (a simulated one set earlier)
        stats.count("sold_out", OPENING + timedelta(microseconds=offset))
    expected: dict[int, int] = {}
    for offset in offsets_us:
        second = int((OPENING + timedelta(microseconds=offset)).timestamp() // 1)
        expected[second] = expected.get(second, 0) + 1
    assert dict(stats.per_second) == expected
    assert stats.by_code["sold_out"] == len(offsets_us)


def test_the_last_microsecond_of_a_second_and_the_first_of_the_next_are_apart() -> None:
    stats = ClaimStats()
    last = datetime(2022, 3, 5, 1, 59, 59, 999_999, tzinfo=UTC)
    for now in (last, last + timedelta(microseconds=1), last):
        stats.count("issued", now)
    start = int(datetime(2022, 3, 5, 2, 0, tzinfo=UTC).timestamp())
    assert dict(stats.per_second) == {start - 1: 2, start: 1}
