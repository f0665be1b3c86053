"""Deciding one claim of the grab: window, eligibility, per-person limits, stock — in that order."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from factories import (
    ONE_US,
    R6_CLAIM_CLOSES_AT,
    R6_OPENS_AT,
    R6_RETAIL_30_6,
    R6_RETAIL_180_40,
    local,
    make_citizen,
    make_limits,
    make_round,
    utc,
)

from xfq.domain.campaign import Round, VoucherType
from xfq.domain.claim import ClaimCode, ClaimDecision, PersonCounts, decide_claim, limit_reached
from xfq.domain.eligibility import Citizen, Residency

FRESH = PersonCounts()


def r6_type(rnd: Round, type_id: str = R6_RETAIL_180_40) -> VoucherType:
    return next(t for t in rnd.types if t.id == type_id)


def decide(
    now: datetime = R6_OPENS_AT,
    *,
    rnd: Round | None = None,
    type_id: str = R6_RETAIL_180_40,
    citizen: Citizen | None = None,
    remaining: int = 23_250,
    counts: PersonCounts = FRESH,
) -> ClaimDecision:
    rnd = rnd or make_round()
    return decide_claim(
        rnd, r6_type(rnd, type_id), citizen or make_citizen(), now, remaining, counts
    )


# --- the window ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "code"),
    [
        (R6_OPENS_AT - ONE_US, ClaimCode.NOT_OPEN),  # 09:59:59.999999
        (local(2022, 3, 4, 10), ClaimCode.NOT_OPEN),  # the day before
        (R6_OPENS_AT, ClaimCode.ISSUED),  # 10:00:00 sharp
        (utc(2022, 3, 5, 2), ClaimCode.ISSUED),  # 10:00:00 sharp, written in UTC
        (utc(2022, 3, 5, 1, 59, 59, 999_999), ClaimCode.NOT_OPEN),
        (local(2022, 3, 8, 12), ClaimCode.ISSUED),
        (R6_CLAIM_CLOSES_AT - ONE_US, ClaimCode.ISSUED),
        (R6_CLAIM_CLOSES_AT, ClaimCode.CLOSED),
        (utc(2022, 3, 11, 16), ClaimCode.CLOSED),
        (local(2022, 3, 20), ClaimCode.CLOSED),
    ],
)
def test_claims_are_taken_from_10_00_sharp_until_claims_close(
    now: datetime, code: ClaimCode
) -> None:
    assert decide(now).code is code


def test_not_open_says_when_the_round_opens() -> None:
    decision = decide(R6_OPENS_AT - ONE_US)
    assert decision.reason == "round opens at 2022-03-05T10:00:00+08:00"


def test_closed_says_when_claims_closed() -> None:
    decision = decide(R6_CLAIM_CLOSES_AT)
    assert decision.reason == "claims closed at 2022-03-12T00:00:00+08:00"


def test_issued_has_no_reason() -> None:
    assert decide() == ClaimDecision(ClaimCode.ISSUED)


# --- eligibility --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("citizen", "reason"),
    [
        (make_citizen(residency=None), "no residency kind is known"),
        (make_citizen(in_city=False), "inside the city"),
    ],
)
def test_ineligible_people_are_told_why(citizen: Citizen, reason: str) -> None:
    decision = decide(citizen=citizen)
    assert decision.code is ClaimCode.NOT_ELIGIBLE
    assert reason in decision.reason


def test_a_residency_kind_the_round_does_not_list_is_not_eligible() -> None:
    rnd = make_round()
    rnd = replace(
        rnd, eligibility=replace(rnd.eligibility, residencies=frozenset({Residency.PERMANENT}))
    )
    decision = decide(rnd=rnd, citizen=make_citizen(residency=Residency.VISIT))
    assert decision.code is ClaimCode.NOT_ELIGIBLE
    assert "'visit' is not eligible" in decision.reason


@pytest.mark.parametrize("residency", list(Residency))
def test_every_residency_kind_of_round6_gets_a_voucher(residency: Residency) -> None:
    assert decide(citizen=make_citizen(residency=residency)).code is ClaimCode.ISSUED


# --- per-person limits: per_type=1 per_category=1 per_round=4 -------------------------------------


def test_a_second_voucher_of_the_same_type_is_refused() -> None:
    decision = decide(counts=PersonCounts(of_type=1, of_category=1, of_round=1))
    assert decision.code is ClaimCode.LIMIT_REACHED
    assert decision.reason == "at most 1 of 满180减40 (retail) per person"


def test_a_second_type_of_the_same_category_is_refused() -> None:
    """Holding a retail 满180减40, the person asks for a retail 满30减6."""
    decision = decide(
        type_id=R6_RETAIL_30_6, counts=PersonCounts(of_type=0, of_category=1, of_round=1)
    )
    assert decision.code is ClaimCode.LIMIT_REACHED
    assert decision.reason == "at most 1 voucher(s) of category retail per person"


def test_a_fifth_voucher_of_the_round_is_refused() -> None:
    rnd = make_round(limits=make_limits(per_category=None))
    decision = decide(rnd=rnd, counts=PersonCounts(of_type=0, of_category=0, of_round=4))
    assert decision.code is ClaimCode.LIMIT_REACHED
    assert decision.reason == "at most 4 voucher(s) of round r6 per person"


def test_one_voucher_of_each_of_four_categories_is_allowed() -> None:
    """Three held (one per other category): the fourth category still issues."""
    decision = decide(counts=PersonCounts(of_type=0, of_category=0, of_round=3))
    assert decision.code is ClaimCode.ISSUED


def test_without_a_category_limit_two_types_of_one_category_are_allowed() -> None:
    rnd = make_round(limits=make_limits(per_category=None))
    decision = decide(rnd=rnd, type_id=R6_RETAIL_30_6, counts=PersonCounts(0, 1, 1))
    assert decision.code is ClaimCode.ISSUED


def test_without_a_round_limit_only_type_and_category_limits_apply() -> None:
    rnd = make_round(limits=make_limits(per_round=None))
    assert decide(rnd=rnd, counts=PersonCounts(0, 0, 100)).code is ClaimCode.ISSUED


def test_a_type_allowing_two_per_person_issues_the_second() -> None:
    rnd = make_round(limits=make_limits(per_category=None))
    types = tuple(replace(t, per_person=2) if t.id == R6_RETAIL_180_40 else t for t in rnd.types)
    rnd = replace(rnd, types=types)
    assert decide(rnd=rnd, counts=PersonCounts(1, 1, 1)).code is ClaimCode.ISSUED
    assert decide(rnd=rnd, counts=PersonCounts(2, 2, 2)).code is ClaimCode.LIMIT_REACHED


@pytest.mark.parametrize(
    ("counts", "fragment"),
    [
        (PersonCounts(1, 1, 4), "of 满180减40"),  # the type limit is named first
        (PersonCounts(0, 1, 4), "category retail"),  # then the category
        (PersonCounts(0, 0, 4), "round r6"),
        (PersonCounts(0, 0, 3), None),
    ],
)
def test_limit_reached_names_the_narrowest_limit(
    counts: PersonCounts, fragment: str | None
) -> None:
    rnd = make_round()
    reason = limit_reached(rnd, r6_type(rnd), counts)
    if fragment is None:
        assert reason is None
    else:
        assert reason is not None and fragment in reason


# --- stock --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("remaining", "code"), [(1, ClaimCode.ISSUED), (0, ClaimCode.SOLD_OUT)])
def test_the_last_voucher_is_issued_then_it_is_sold_out(remaining: int, code: ClaimCode) -> None:
    assert decide(remaining=remaining).code is code


def test_sold_out_names_the_voucher_type() -> None:
    assert decide(remaining=0).reason == "满180减40 is sold out"


# --- order of the checks ------------------------------------------------------------------------

NO_RESIDENCY = make_citizen(residency=None)
OUT_OF_TOWN = make_citizen(in_city=False)
ALL_LIMITS_HIT = PersonCounts(of_type=1, of_category=1, of_round=4)


@pytest.mark.parametrize(
    ("now", "citizen", "remaining", "counts", "code"),
    [
        # Before the opening, "not open" whatever else is wrong: no one is told "sold out" at 09:59.
        (R6_OPENS_AT - ONE_US, make_citizen(), 0, FRESH, ClaimCode.NOT_OPEN),
        (R6_OPENS_AT - ONE_US, make_citizen(), 10, PersonCounts(1, 1, 1), ClaimCode.NOT_OPEN),
        (R6_OPENS_AT - ONE_US, NO_RESIDENCY, 10, FRESH, ClaimCode.NOT_OPEN),
        # After closing, "closed" whatever else is wrong.
        (R6_CLAIM_CLOSES_AT, NO_RESIDENCY, 0, ALL_LIMITS_HIT, ClaimCode.CLOSED),
        # Eligibility before limits and stock.
        (R6_OPENS_AT, OUT_OF_TOWN, 0, ALL_LIMITS_HIT, ClaimCode.NOT_ELIGIBLE),
        # A person at their limit hears "limit reached", not "sold out".
        (R6_OPENS_AT, make_citizen(), 0, PersonCounts(1, 1, 1), ClaimCode.LIMIT_REACHED),
        (R6_OPENS_AT, make_citizen(), 0, FRESH, ClaimCode.SOLD_OUT),
    ],
)
def test_checks_run_in_the_order_a_person_would_want_to_hear_them(
    now: datetime, citizen: Citizen, remaining: int, counts: PersonCounts, code: ClaimCode
) -> None:
    decision = decide(now, citizen=citizen, remaining=remaining, counts=counts)
    assert decision.code is code
