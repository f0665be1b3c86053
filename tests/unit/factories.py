"""Small builders of domain objects for unit tests, shaped like the Taiyuan round-6 reference.

Every builder takes keyword overrides of its dataclass fields (applied with `dataclasses.replace`),
so a test states only what it changes from the reference.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from xfq.domain.campaign import (
    Campaign,
    Category,
    CheckoutRules,
    IssuanceMode,
    PartialRefund,
    PersonLimits,
    RefundPolicy,
    RolloverPolicy,
    Round,
    StatedTotal,
    ThresholdBase,
    ValidityKind,
    ValidityRule,
    VoucherType,
)
from xfq.domain.checkout import Merchant, Order
from xfq.domain.eligibility import Citizen, Eligibility, Residency
from xfq.domain.money import yuan_to_fen
from xfq.domain.voucher import Voucher, VoucherState

TZ = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    """A wall-clock instant in Taiyuan (Asia/Shanghai, UTC+8, no daylight saving)."""
    return datetime(year, month, day, hour, minute, second, us, tzinfo=TZ)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


ONE_US = timedelta(microseconds=1)

# Round 6: the grab opens Saturday 2022-03-05 10:00 sharp; vouchers are usable through the
# evening of Friday 2022-03-11. Round 5 opened the Saturday before.
R6_OPENS_AT = local(2022, 3, 5, 10)
R6_CLAIM_CLOSES_AT = local(2022, 3, 12)
R6_VALID_UNTIL = local(2022, 3, 12)  # exclusive
R5_OPENS_AT = local(2022, 2, 26, 10)
R5_CLAIM_CLOSES_AT = local(2022, 3, 5)
R5_VALID_UNTIL = local(2022, 3, 5)

RETAIL, HOME, CATERING, ONLINE = "retail", "home", "catering", "online"

CATEGORIES = (
    Category(RETAIL, "零售通用", "retail, general"),
    Category(HOME, "家电家居", "home appliances & furnishing"),
    Category(CATERING, "餐饮住宿", "catering & lodging"),
    Category(ONLINE, "线上通用", "online, general"),
)

# (category, threshold yuan, discount yuan, count) as printed in the newspaper.
ROUND6_TYPES: tuple[tuple[str, int, int, int], ...] = (
    (RETAIL, 180, 40, 23_250),
    (RETAIL, 30, 6, 84_000),
    (HOME, 2000, 300, 1_980),
    (HOME, 500, 80, 1_800),
    (CATERING, 200, 50, 3_270),
    (ONLINE, 180, 40, 4_000),
    (ONLINE, 30, 6, 8_400),
)

ROUND6_STATED_TOTAL = StatedTotal(count=126_700, value_fen=2_545_900_00)
ROUND6_STATED_BY_CATEGORY = {
    RETAIL: StatedTotal(107_250, 1_434_000_00),
    HOME: StatedTotal(3_780, 738_000_00),
    CATERING: StatedTotal(3_270, 163_500_00),
    ONLINE: StatedTotal(12_400, 210_400_00),
}


def type_id(category: str, threshold_yuan: int, discount_yuan: int, round_id: str = "r6") -> str:
    """E.g. 'r6-retail-180-40'."""
    return f"{round_id}-{category}-{threshold_yuan}-{discount_yuan}"


# The round-6 type ids tests name most often.
R6_RETAIL_180_40 = type_id(RETAIL, 180, 40)
R6_RETAIL_30_6 = type_id(RETAIL, 30, 6)
R6_HOME_2000_300 = type_id(HOME, 2000, 300)
R6_CATERING_200_50 = type_id(CATERING, 200, 50)
R6_ONLINE_180_40 = type_id(ONLINE, 180, 40)


def make_voucher_type(**overrides: Any) -> VoucherType:
    """满180减40 of round 6, retail, unless overridden."""
    base = VoucherType(
        id=R6_RETAIL_180_40,
        round_id="r6",
        category=RETAIL,
        threshold_fen=180_00,
        discount_fen=40_00,
        count=23_250,
        per_person=1,
        channel="unionpay",
    )
    return replace(base, **overrides)


def round6_types(round_id: str = "r6") -> tuple[VoucherType, ...]:
    return tuple(
        make_voucher_type(
            id=type_id(category, threshold, discount, round_id),
            round_id=round_id,
            category=category,
            threshold_fen=threshold * 100,
            discount_fen=discount * 100,
            count=count,
        )
        for category, threshold, discount, count in ROUND6_TYPES
    )


def make_validity(**overrides: Any) -> ValidityRule:
    return replace(ValidityRule(kind=ValidityKind.CALENDAR_DAYS, days=7), **overrides)


def make_eligibility(**overrides: Any) -> Eligibility:
    return replace(Eligibility(residencies=frozenset(Residency), require_in_city=True), **overrides)


def make_limits(**overrides: Any) -> PersonLimits:
    return replace(PersonLimits(per_type=1, per_category=1, per_round=4), **overrides)


def make_round(**overrides: Any) -> Round:
    """Round 6 of the reference campaign; its types follow an overridden `id`."""
    round_id = overrides.get("id", "r6")
    base = Round(
        id=round_id,
        number=6,
        name="第六轮",
        opens_at=R6_OPENS_AT,
        claim_closes_at=R6_CLAIM_CLOSES_AT,
        validity=make_validity(),
        issuance=IssuanceMode.GRAB,
        limits=make_limits(),
        eligibility=make_eligibility(),
        types=round6_types(round_id),
        stated_total=ROUND6_STATED_TOTAL,
        stated_by_category=dict(ROUND6_STATED_BY_CATEGORY),
    )
    return replace(base, **overrides)


def make_round5(**overrides: Any) -> Round:
    """The round before: grabbed Saturday 2022-02-26, usable through Friday 2022-03-04."""
    base = make_round(
        id="r5",
        number=5,
        name="第五轮",
        opens_at=R5_OPENS_AT,
        claim_closes_at=R5_CLAIM_CLOSES_AT,
        stated_total=None,
        stated_by_category={},
    )
    return replace(base, **overrides)


def make_checkout_rules(**overrides: Any) -> CheckoutRules:
    base = CheckoutRules(
        threshold_base=ThresholdBase.AFTER_MERCHANT_PROMOTION, one_voucher_per_order=True
    )
    return replace(base, **overrides)


def make_refund_policy(**overrides: Any) -> RefundPolicy:
    base = RefundPolicy(full_refund_restores=True, partial=PartialRefund.KEEP_IF_THRESHOLD_MET)
    return replace(base, **overrides)


def make_campaign(**overrides: Any) -> Campaign:
    base = Campaign(
        id="taiyuan-2022",
        name="晋情消费·悦享生活",
        city="太原",
        timezone_name="Asia/Shanghai",
        tz=TZ,
        categories=CATEGORIES,
        rounds=(make_round5(), make_round()),
        checkout=make_checkout_rules(),
        refunds=make_refund_policy(),
        rollover=RolloverPolicy(enabled=False, sources=frozenset()),
    )
    return replace(base, **overrides)


def make_citizen(**overrides: Any) -> Citizen:
    """A permanent resident claiming from inside the city."""
    return replace(
        Citizen(person_id="p-1", residency=Residency.PERMANENT, in_city=True), **overrides
    )


def make_voucher(**overrides: Any) -> Voucher:
    """An issued retail 满180减40 of round 6, grabbed three seconds after the opening."""
    claimed_at = R6_OPENS_AT + timedelta(seconds=3)
    base = Voucher(
        id="v-1",
        type_id=R6_RETAIL_180_40,
        round_id="r6",
        category=RETAIL,
        person_id="p-1",
        state=VoucherState.ISSUED,
        issued_at=claimed_at,
        valid_from=claimed_at,
        valid_until=R6_VALID_UNTIL,
    )
    return replace(base, **overrides)


def make_merchant(**overrides: Any) -> Merchant:
    """An enrolled retail shop."""
    return replace(Merchant(id="m-1", category=RETAIL, enrolled=True), **overrides)


def order_yuan(list_price: str, promotion: str = "0") -> Order:
    """An order from yuan text, e.g. order_yuan('200', '30')."""
    return Order(
        list_price_fen=yuan_to_fen(list_price), merchant_promotion_fen=yuan_to_fen(promotion)
    )
