"""The rollover policy: which round takes a finished round's leftovers, as which vouchers."""

from __future__ import annotations

from dataclasses import replace

from factories import (
    CATERING,
    HOME,
    RETAIL,
    local,
    make_campaign,
    make_round,
    make_round5,
    make_voucher_type,
    type_id,
)

from xfq.domain.campaign import Campaign, RolloverPolicy, RolloverSource
from xfq.domain.rollover import (
    Leftover,
    describe_policy,
    effective_budget_fen,
    plan_rollover,
    rolled_in_counts,
    rollover_due_at,
    target_round,
    target_type,
)

BOTH = frozenset({RolloverSource.UNCLAIMED, RolloverSource.EXPIRED})
R5_RETAIL_180_40 = type_id(RETAIL, 180, 40, "r5")


def campaign(sources: frozenset[RolloverSource] = BOTH, into: str = "next") -> Campaign:
    return make_campaign(rollover=RolloverPolicy(enabled=True, sources=sources, into=into))


def leftovers(**by_type: tuple[int, int]) -> dict[str, Leftover]:
    return {t: Leftover(t, unclaimed, expired) for t, (unclaimed, expired) in by_type.items()}


def test_round_5_rolls_into_round_6_and_round_6_into_nothing() -> None:
    c = campaign()
    assert target_round(c, "r5") == c.round("r6")
    assert target_round(c, "r6") is None


def test_a_named_round_takes_the_leftovers_only_from_earlier_rounds() -> None:
    c = campaign(into="r6")
    assert target_round(c, "r5") == c.round("r6")
    assert target_round(c, "r6") is None


def test_the_same_voucher_comes_back_as_extra_count_of_the_later_rounds_type() -> None:
    c = campaign()
    moves = plan_rollover(c, "r5", c.round("r6"), leftovers(**{R5_RETAIL_180_40: (100, 25)}))
    move = next(m for m in moves if m.from_type_id == R5_RETAIL_180_40)
    assert move.into_type_id == type_id(RETAIL, 180, 40)
    assert (move.unclaimed, move.expired, move.added_count) == (100, 25, 125)
    assert move.value_fen == 125 * 40_00 and move.remainder_fen == 0
    assert rolled_in_counts(moves) == {type_id(RETAIL, 180, 40): 125}


def test_only_the_sources_the_policy_names_roll() -> None:
    c = campaign(sources=frozenset({RolloverSource.EXPIRED}))
    moves = plan_rollover(c, "r5", c.round("r6"), leftovers(**{R5_RETAIL_180_40: (100, 25)}))
    assert rolled_in_counts(moves) == {type_id(RETAIL, 180, 40): 25}


def test_without_the_same_voucher_value_goes_to_the_categorys_smallest_discount() -> None:
    # round 6 has only a retail 满100减30 and a home type; round 5's 满180减40 rolls by value
    r6 = make_round(
        types=(
            make_voucher_type(id="r6-retail-100-30", threshold_fen=100_00, discount_fen=30_00),
            make_voucher_type(id="r6-retail-300-70", threshold_fen=300_00, discount_fen=70_00),
            make_voucher_type(
                id="r6-home", category=HOME, threshold_fen=500_00, discount_fen=80_00
            ),
        )
    )
    c = replace(campaign(), rounds=(make_round5(), r6))
    target = target_type(r6, c.voucher_type(R5_RETAIL_180_40)[1])
    assert target is not None and target.id == "r6-retail-100-30"
    left = leftovers(**{R5_RETAIL_180_40: (10, 0), type_id(CATERING, 200, 50, "r5"): (3, 1)})
    moves = {m.from_type_id: m for m in plan_rollover(c, "r5", r6, left)}
    retail = moves[R5_RETAIL_180_40]
    assert (retail.value_fen, retail.added_count, retail.remainder_fen) == (400_00, 13, 10_00)
    catering = moves[type_id(CATERING, 200, 50, "r5")]  # round 6 has no catering type here
    assert catering.into_type_id is None and catering.remainder_fen == 4 * 50_00
    assert catering.added_count == 0


def test_a_round_is_finished_when_claims_have_closed_and_its_validity_has_ended() -> None:
    c = campaign()
    assert rollover_due_at(c, c.round("r5")) == local(2022, 3, 5)  # round 5: through 03-04
    assert rollover_due_at(c, c.round("r6")) == local(2022, 3, 12)


def test_the_effective_budget_adds_what_rolled_in_as_vouchers() -> None:
    c = campaign()
    extra = {type_id(RETAIL, 180, 40): 125, type_id(RETAIL, 30, 6): 10}
    assert effective_budget_fen(c, "r6", extra) == 2_545_900_00 + 125 * 40_00 + 10 * 6_00
    assert effective_budget_fen(c, "r5", extra) == c.round("r5").budget_fen


def test_spec_check_shows_what_the_policy_would_do() -> None:
    lines = describe_policy(campaign())
    assert lines[0].startswith("rollover: enabled; expired and unclaimed value")
    assert any("round r5 -> round r6 (from 2022-03-05T00:00:00+08:00)" in x for x in lines)
    assert any(f"{R5_RETAIL_180_40} 满180减40 -> r6-retail-180-40" in x for x in lines)
    assert "round r6: no later round" in lines[-1]
    assert describe_policy(make_campaign())[0].startswith("rollover: disabled")
