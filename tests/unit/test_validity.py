"""When a voucher can be used: validity windows in the campaign's time zone, and lookups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest
from factories import (
    HOME,
    ONE_US,
    R5_OPENS_AT,
    R6_CLAIM_CLOSES_AT,
    R6_OPENS_AT,
    R6_RETAIL_180_40,
    R6_VALID_UNTIL,
    TZ,
    UTC,
    local,
    make_campaign,
    make_round,
    make_round5,
    make_validity,
    make_voucher,
    utc,
)

from xfq.domain.campaign import ValidityKind, ValidityRule
from xfq.domain.errors import UnknownObject

SEVEN_CALENDAR_DAYS = ValidityRule(kind=ValidityKind.CALENDAR_DAYS, days=7)


def r6_window(claimed_at: datetime) -> tuple[datetime, datetime]:
    return SEVEN_CALENDAR_DAYS.window(R6_OPENS_AT, claimed_at, TZ)


# --- round 6: usable through the evening of 2022-03-11, Asia/Shanghai ---------------------------


def test_round6_voucher_is_usable_from_its_claim_until_midnight_starting_march_12() -> None:
    claimed_at = local(2022, 3, 5, 10, 0, 3)
    assert r6_window(claimed_at) == (claimed_at, local(2022, 3, 12))


def test_round6_validity_ends_at_16_00_utc_on_march_11() -> None:
    _, until = r6_window(local(2022, 3, 5, 10, 0, 3))
    assert until == utc(2022, 3, 11, 16)
    assert until.astimezone(TZ).date() == date(2022, 3, 12)


@pytest.mark.parametrize(
    ("now", "usable"),
    [
        (local(2022, 3, 5, 10, 0, 3), True),  # the moment it was grabbed
        (local(2022, 3, 8, 12), True),
        (local(2022, 3, 11, 20), True),  # "the evening of 3-11"
        (local(2022, 3, 11, 23, 59, 59, 999_999), True),
        (local(2022, 3, 12), False),
        (local(2022, 3, 12, 0, 0, 1), False),
        (local(2022, 3, 12, 10), False),  # a full week after the grab is too late
        # The same instants written in UTC must give the same answers.
        (utc(2022, 3, 11, 15, 59, 59, 999_999), True),
        (utc(2022, 3, 11, 16), False),
        # 3-11 23:00 UTC is already 3-12 07:00 in Taiyuan.
        (utc(2022, 3, 11, 23), False),
        # Before the claim it is not usable, even though the date is inside the week.
        (local(2022, 3, 5, 10, 0, 2), False),
    ],
)
def test_round6_voucher_usable_at(now: datetime, usable: bool) -> None:
    claimed_at = local(2022, 3, 5, 10, 0, 3)
    valid_from, valid_until = r6_window(claimed_at)
    voucher = make_voucher(issued_at=claimed_at, valid_from=valid_from, valid_until=valid_until)
    assert voucher.usable_at(now) is usable


@pytest.mark.parametrize(
    "claimed_at",
    [
        R6_OPENS_AT,
        local(2022, 3, 5, 10, 0, 0, 1),
        local(2022, 3, 8, 15),
        local(2022, 3, 11, 23, 59, 59),
    ],
)
def test_calendar_days_end_on_the_same_day_however_late_one_claims(claimed_at: datetime) -> None:
    valid_from, valid_until = r6_window(claimed_at)
    assert valid_from == claimed_at
    assert valid_until == R6_VALID_UNTIL


def test_window_is_the_same_when_the_opening_and_claim_are_given_in_utc() -> None:
    opens_utc = R6_OPENS_AT.astimezone(UTC)
    claimed_utc = utc(2022, 3, 5, 2, 0, 3)
    assert opens_utc == utc(2022, 3, 5, 2)
    assert SEVEN_CALENDAR_DAYS.window(opens_utc, claimed_utc, TZ) == r6_window(claimed_utc)
    _, until = SEVEN_CALENDAR_DAYS.window(opens_utc, claimed_utc, TZ)
    assert until == R6_VALID_UNTIL


def test_days_are_counted_in_the_campaign_time_zone_not_utc() -> None:
    """A round opening at 00:30 on 3-05 in Taiyuan opens on 3-04 by the UTC calendar.

    Counting from the UTC date would end the week a day early (after 3-10).
    """
    opens_at = local(2022, 3, 5, 0, 30)
    assert opens_at.astimezone(UTC).date() == date(2022, 3, 4)
    _, until = SEVEN_CALENDAR_DAYS.window(opens_at, opens_at, TZ)
    assert until == local(2022, 3, 12)


def test_round5_vouchers_are_usable_through_friday_march_4() -> None:
    _, until = SEVEN_CALENDAR_DAYS.window(R5_OPENS_AT, R5_OPENS_AT + timedelta(seconds=1), TZ)
    assert until == local(2022, 3, 5)


# --- days after claim ---------------------------------------------------------------------------

DAYS_AFTER_CLAIM_7 = ValidityRule(kind=ValidityKind.DAYS_AFTER_CLAIM, days=7)


@pytest.mark.parametrize(
    ("claimed_at", "until"),
    [
        (local(2022, 3, 5, 10), local(2022, 3, 12)),
        (local(2022, 3, 8, 15), local(2022, 3, 15)),
        (local(2022, 3, 8, 23, 59, 59, 999_999), local(2022, 3, 15)),
        (local(2022, 3, 9), local(2022, 3, 16)),
        # 3-08 16:30 UTC is 3-09 00:30 in Taiyuan: the claim day is 3-09.
        (utc(2022, 3, 8, 16, 30), local(2022, 3, 16)),
        (utc(2022, 3, 8, 15, 59), local(2022, 3, 15)),
    ],
)
def test_days_after_claim_count_the_local_claim_day(claimed_at: datetime, until: datetime) -> None:
    assert DAYS_AFTER_CLAIM_7.window(R6_OPENS_AT, claimed_at, TZ) == (claimed_at, until)


def test_one_day_after_claim_means_until_the_end_of_the_claim_day() -> None:
    rule = ValidityRule(kind=ValidityKind.DAYS_AFTER_CLAIM, days=1)
    claimed_at = local(2022, 3, 8, 23, 30)
    assert rule.window(R6_OPENS_AT, claimed_at, TZ) == (claimed_at, local(2022, 3, 9))


# --- fixed dates --------------------------------------------------------------------------------

FIXED_7_TO_13 = ValidityRule(
    kind=ValidityKind.FIXED, valid_from=date(2022, 3, 7), valid_through=date(2022, 3, 13)
)


def test_fixed_window_claimed_early_starts_at_midnight_of_the_first_day() -> None:
    claimed_at = local(2022, 3, 5, 10, 0, 3)
    assert FIXED_7_TO_13.window(R6_OPENS_AT, claimed_at, TZ) == (
        local(2022, 3, 7),
        local(2022, 3, 14),
    )


def test_fixed_window_claimed_inside_starts_at_the_claim() -> None:
    claimed_at = local(2022, 3, 9, 12)
    assert FIXED_7_TO_13.window(R6_OPENS_AT, claimed_at, TZ) == (claimed_at, local(2022, 3, 14))


def test_fixed_window_boundaries_are_in_the_campaign_time_zone() -> None:
    valid_from, valid_until = FIXED_7_TO_13.window(R6_OPENS_AT, R6_OPENS_AT, TZ)
    assert valid_from == utc(2022, 3, 6, 16)
    assert valid_until == utc(2022, 3, 13, 16)


# --- last usable day (what the app prints: "use before the evening of ...") ----------------------


def test_last_usable_day_of_round6_is_march_11() -> None:
    rnd = make_round()
    assert rnd.validity.last_usable_day(rnd.opens_at, rnd.claim_closes_at, TZ) == date(2022, 3, 11)


def test_last_usable_day_of_a_round_opening_feb_26_is_march_4() -> None:
    rnd = make_round5()
    assert rnd.opens_at == local(2022, 2, 26, 10)
    assert rnd.validity.last_usable_day(rnd.opens_at, rnd.claim_closes_at, TZ) == date(2022, 3, 4)


@pytest.mark.parametrize(
    ("rule", "last_day"),
    [
        (make_validity(days=1), date(2022, 3, 5)),
        (make_validity(days=14), date(2022, 3, 18)),
        # The latest claim is 3-11 just before midnight; seven days from it ends on 3-17.
        (DAYS_AFTER_CLAIM_7, date(2022, 3, 17)),
        (FIXED_7_TO_13, date(2022, 3, 13)),
    ],
)
def test_last_usable_day_by_rule(rule: ValidityRule, last_day: date) -> None:
    assert rule.last_usable_day(R6_OPENS_AT, R6_CLAIM_CLOSES_AT, TZ) == last_day


def test_last_usable_day_is_read_in_the_campaign_time_zone_when_given_utc_instants() -> None:
    opens_utc = utc(2022, 3, 5, 2)
    closes_utc = utc(2022, 3, 11, 16)
    assert SEVEN_CALENDAR_DAYS.last_usable_day(opens_utc, closes_utc, TZ) == date(2022, 3, 11)


# --- the campaign's lookups ---------------------------------------------------------------------


def test_campaign_usable_window_uses_the_round_of_the_type() -> None:
    campaign = make_campaign()
    claimed_at = local(2022, 3, 5, 10, 0, 3)
    assert campaign.usable_window(R6_RETAIL_180_40, claimed_at) == (claimed_at, R6_VALID_UNTIL)
    r5_claim = R5_OPENS_AT + timedelta(seconds=3)
    assert campaign.usable_window("r5-retail-180-40", r5_claim) == (r5_claim, local(2022, 3, 5))


def test_campaign_finds_rounds_types_and_categories() -> None:
    campaign = make_campaign()
    assert campaign.round("r6").number == 6
    rnd, vtype = campaign.voucher_type(R6_RETAIL_180_40)
    assert rnd.id == "r6"
    assert (vtype.threshold_fen, vtype.discount_fen) == (180_00, 40_00)
    assert campaign.category(HOME).name == "家电家居"


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        (lambda: make_campaign().round("r9"), "no round 'r9'"),
        (lambda: make_campaign().voucher_type("r6-retail-999-1"), "no voucher type"),
        (lambda: make_campaign().usable_window("nope", R6_OPENS_AT), "no voucher type 'nope'"),
        (lambda: make_campaign().category("jewellery"), "no category 'jewellery'"),
    ],
)
def test_unknown_ids_raise_unknown_object(lookup: Callable[[], object], message: str) -> None:
    with pytest.raises(UnknownObject, match=message) as info:
        lookup()
    assert info.value.code == "unknown_object"


def test_round_is_open_from_the_opening_instant_until_claims_close() -> None:
    rnd = make_round()
    assert not rnd.is_open(R6_OPENS_AT - ONE_US)
    assert rnd.is_open(R6_OPENS_AT)
    assert rnd.is_open(utc(2022, 3, 5, 2))
    assert rnd.is_open(R6_CLAIM_CLOSES_AT - ONE_US)
    assert not rnd.is_open(R6_CLAIM_CLOSES_AT)
