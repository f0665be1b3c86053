"""Settlement arithmetic: what the city owes each merchant per day, open and closed days."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from factories import TZ, local, utc
from hypothesis import given, settings
from hypothesis import strategies as st

from xfq.domain.settlement import (
    LineKind,
    Settled,
    SettledRedemption,
    StatementLine,
    carry_day,
    day_ended,
    local_day,
    open_lines,
    settle_day,
)

MARCH = {d: date(2022, 3, d) for d in range(1, 32)}


def redemption(
    rid: str,
    at: datetime,
    discount_fen: int = 40_00,
    merchant: str = "m-1",
    reversed_at: datetime | None = None,
) -> SettledRedemption:
    return SettledRedemption(
        redemption_id=rid,
        merchant_id=merchant,
        type_id="r6-retail-180-40",
        order_ref=f"o-{rid}",
        order_amount_fen=200_00,
        discount_fen=discount_fen,
        redeemed_at=at,
        reversed_at=reversed_at,
    )


def close(
    settled: Settled, day: date, lines: list[StatementLine]
) -> tuple[Settled, list[StatementLine]]:
    """Close `day` as the service does: freeze its open lines."""
    frozen = [line for line in lines if line.day == day]
    return (
        Settled(
            closed_days=settled.closed_days | {day},
            paid=settled.paid | {x.redemption_id for x in frozen if x.kind is LineKind.REDEMPTION},
            clawed_back=settled.clawed_back
            | {x.redemption_id for x in frozen if x.kind is LineKind.REVERSAL},
        ),
        frozen,
    )


def test_a_redemption_belongs_to_its_day_in_the_campaigns_time_zone() -> None:
    late = redemption("a", local(2022, 3, 11, 23, 59, 59))
    midnight = redemption("b", local(2022, 3, 12, 0, 0, 0))
    lines = open_lines([late, midnight], Settled(), TZ)
    assert {(x.redemption_id, x.day) for x in lines} == {("a", MARCH[11]), ("b", MARCH[12])}
    # 2022-03-11 16:00 UTC is already midnight in Taiyuan
    assert local_day(utc(2022, 3, 11, 15, 59, 59), TZ) == MARCH[11]
    assert local_day(utc(2022, 3, 11, 16), TZ) == MARCH[12]


def test_an_open_day_owes_only_the_redemptions_that_still_stand() -> None:
    standing = redemption("a", local(2022, 3, 7, 12))
    refunded = redemption("b", local(2022, 3, 7, 13), reversed_at=local(2022, 3, 8, 9))
    day = settle_day(MARCH[7], open_lines([standing, refunded], Settled(), TZ), frozenset())
    assert day.owed_fen == 40_00
    assert [x.redemption_id for x in day.statement("m-1").lines] == ["a"]
    # the reversal of a redemption never paid is not a line anywhere
    assert settle_day(MARCH[8], open_lines([refunded], Settled(), TZ), frozenset()).owed_fen == 0


def test_a_reversal_after_the_day_was_closed_is_clawed_back_on_the_next_open_day() -> None:
    r = redemption("a", local(2022, 3, 7, 12))
    settled, frozen = close(Settled(), MARCH[7], open_lines([r], Settled(), TZ))
    assert sum(x.owed_fen for x in frozen) == 40_00
    reversed_r = replace(r, reversed_at=local(2022, 3, 9, 10))
    lines = open_lines([reversed_r], settled, TZ)
    assert [(x.day, x.kind, x.owed_fen) for x in lines] == [(MARCH[9], LineKind.REVERSAL, -40_00)]
    day9 = settle_day(MARCH[9], lines, frozenset())
    assert day9.statement("m-1").reversal_fen == 40_00 and day9.owed_fen == -40_00


def test_a_reversal_on_a_day_already_closed_goes_to_the_first_open_day_after_it() -> None:
    closed = frozenset({MARCH[9], MARCH[10]})
    assert carry_day(MARCH[9], closed) == MARCH[11]
    assert carry_day(MARCH[8], closed) == MARCH[8]


def test_a_clawed_back_reversal_is_not_taken_back_twice() -> None:
    r = redemption("a", local(2022, 3, 7, 12))
    settled, _ = close(Settled(), MARCH[7], open_lines([r], Settled(), TZ))
    reversed_r = replace(r, reversed_at=local(2022, 3, 9, 10))
    settled, frozen = close(settled, MARCH[9], open_lines([reversed_r], settled, TZ))
    assert [x.kind for x in frozen] == [LineKind.REVERSAL]
    assert open_lines([reversed_r], settled, TZ) == []


def test_a_suspended_merchants_statement_is_held_not_payable() -> None:
    lines = open_lines(
        [
            redemption("a", local(2022, 3, 7, 12), merchant="m-1"),
            redemption("b", local(2022, 3, 7, 12), merchant="m-2", discount_fen=6_00),
        ],
        Settled(),
        TZ,
    )
    day = settle_day(MARCH[7], lines, held_merchants=frozenset({"m-2"}))
    assert (day.owed_fen, day.payable_fen, day.held_fen) == (46_00, 40_00, 6_00)
    assert day.statement("m-2").held and day.statement("m-2").payable_fen == 0


def test_statements_are_in_a_stable_order_whatever_order_the_ledger_gives() -> None:
    rs = [
        redemption(f"r{i}", local(2022, 3, 7, 10 + i % 5), merchant=f"m-{i % 3}") for i in range(12)
    ]
    a = settle_day(MARCH[7], open_lines(rs, Settled(), TZ), frozenset())
    b = settle_day(MARCH[7], open_lines(reversed(rs), Settled(), TZ), frozenset())
    assert a == b
    assert [s.merchant_id for s in a.statements] == ["m-0", "m-1", "m-2"]


def test_a_day_can_be_closed_only_once_it_is_over_in_taiyuan() -> None:
    assert not day_ended(MARCH[11], local(2022, 3, 11, 23, 59, 59), TZ)
    assert day_ended(MARCH[11], local(2022, 3, 12), TZ)
    assert not day_ended(MARCH[11], utc(2022, 3, 11, 15, 59, 59), TZ)


# --- the property: however refunds and closings interleave, the total is the standing discounts


START = local(2022, 3, 5, 10)

events = st.lists(
    st.tuples(
        st.integers(0, 6 * 24),  # hour of the redemption after the opening
        st.sampled_from([6_00, 40_00, 50_00, 300_00]),
        st.one_of(st.none(), st.integers(0, 6 * 24)),  # hours until its reversal, if any
        st.sampled_from(["m-1", "m-2", "m-3"]),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(events=events, close_after=st.lists(st.integers(0, 8), max_size=8))
def test_every_day_together_owes_exactly_the_discounts_of_standing_redemptions(
    events: list[tuple[int, int, int | None, str]], close_after: list[int]
) -> None:
    """Days are closed in any order at the end of each simulated day; reversals land later."""
    rs = [
        redemption(
            f"r{i}",
            START + timedelta(hours=h),
            d,
            m,
            None if back is None else START + timedelta(hours=h + back + 1),
        )
        for i, (h, d, back, m) in enumerate(events)
    ]
    settled, frozen = Settled(), []
    for day_index in range(14):
        now = local(2022, 3, 6) + timedelta(days=day_index)  # midnight ending a day
        visible = [
            replace(r, reversed_at=None) if r.reversed_at and r.reversed_at >= now else r
            for r in rs
            if r.redeemed_at < now
        ]
        for offset in close_after:
            day = MARCH[5] + timedelta(days=offset)
            if day_ended(day, now, TZ) and day not in settled.closed_days:
                settled, lines = close(settled, day, open_lines(visible, settled, TZ))
                frozen += lines
    open_ = open_lines(rs, settled, TZ)
    assert not any(x.day in settled.closed_days for x in open_)  # a closed day never changes
    total = sum(x.owed_fen for x in frozen) + sum(x.owed_fen for x in open_)
    assert total == sum(r.discount_fen for r in rs if r.reversed_at is None)
