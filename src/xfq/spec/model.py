"""The shape of a campaign file, as strict pydantic models.

Strict on purpose: no unknown keys (typos fail loudly), no text where numbers belong, no floats
for money. Relations between fields (sums, windows, duplicates) are checked in `checks.py`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from xfq.domain.campaign import (
    IssuanceMode,
    PartialRefund,
    RolloverSource,
    ThresholdBase,
    ValidityKind,
)
from xfq.domain.eligibility import Residency
from xfq.domain.money import FEN_PER_YUAN, MoneyFormatError, yuan_to_fen

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
MAX_VOUCHER_YUAN = 1_000_000  # one voucher's threshold or discount
MAX_BUDGET_YUAN = 1_000_000_000_000
MAX_COUNT = 100_000_000
MAX_PER_PERSON = 1_000
MAX_VALIDITY_DAYS = 3_660


def _yuan_checker(max_yuan: int) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, float):
            raise ValueError(
                f"{value} is a float; write whole yuan (180) or text with at most two"
                f' decimals ("{value:.2f}"), because floats are not exact'
            )
        try:
            fen = yuan_to_fen(value)  # type: ignore[arg-type]  # refuses anything else
        except MoneyFormatError as err:
            raise ValueError(str(err)) from None
        if fen <= 0:
            raise ValueError(f"must be more than 0 yuan, not {value!r}")
        if fen > max_yuan * FEN_PER_YUAN:
            raise ValueError(f"must be at most {max_yuan} yuan, not {value!r}")
        return value

    return BeforeValidator(check)


def _known_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name like 'Asia/Shanghai'"
        ) from None
    return name


Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
Text = Annotated[str, Field(min_length=1, max_length=200)]
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]
# Yuan amounts stay as written (int or "12.50") here; `convert.py` turns them into fen.
VoucherYuan = Annotated[int | str, _yuan_checker(MAX_VOUCHER_YUAN)]
BudgetYuan = Annotated[int | str, _yuan_checker(MAX_BUDGET_YUAN)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
PerPerson = Annotated[int, Field(ge=1, le=MAX_PER_PERSON)]
# Enum fields are `strict=False`: they arrive as TOML text, and strict mode would only accept
# enum instances. Pydantic still accepts only the listed values.


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CampaignHead(_Strict):
    id: Id
    name: Text
    city: Text
    timezone: TimeZoneName


class CategoryFile(_Strict):
    id: Id
    name: Text
    name_en: Text


class CheckoutFile(_Strict):
    threshold_base: Annotated[ThresholdBase, Field(strict=False)]
    one_voucher_per_order: bool


class RefundsFile(_Strict):
    full_refund_restores: bool
    partial: Annotated[PartialRefund, Field(strict=False)]


class RolloverFile(_Strict):
    enabled: bool
    sources: list[Annotated[RolloverSource, Field(strict=False)]] = Field(max_length=2)
    into: Annotated[str, Field(pattern=ID_PATTERN, max_length=64)] = "next"  # or a round id


class ValidityFile(_Strict):
    kind: Annotated[ValidityKind, Field(strict=False)]
    days: Annotated[int, Field(ge=1, le=MAX_VALIDITY_DAYS)] | None = None
    valid_from: date | None = Field(default=None, alias="from")
    valid_through: date | None = Field(default=None, alias="through")


class LimitsFile(_Strict):
    per_type: PerPerson
    per_category: PerPerson | None = None
    per_round: PerPerson | None = None
    per_household: PerPerson | None = None  # the round's vouchers across a declared household


class WaitingRoomFile(_Strict):
    opens_before_minutes: Annotated[int, Field(ge=1, le=240)]
    admit_per_second: Annotated[int, Field(ge=1, le=1_000_000)]
    token_ttl_seconds: Annotated[int, Field(ge=5, le=3_600)] = 60


class LotteryFile(_Strict):
    registration_opens_at: datetime
    registration_closes_at: datetime
    draw_at: datetime
    max_wins_per_week: PerPerson | None = None
    max_wins_per_campaign: PerPerson | None = None


class EligibilityFile(_Strict):
    residencies: list[Annotated[Residency, Field(strict=False)]] = Field(min_length=1, max_length=4)
    require_in_city: bool


class StatedFile(_Strict):
    count: Count
    value_yuan: BudgetYuan


class TypeFile(_Strict):
    id: Id
    category: Id
    threshold_yuan: VoucherYuan
    discount_yuan: VoucherYuan
    count: Count
    per_person: PerPerson | None = None
    channel: Id = "app"
    assisted: Count | None = None  # reserved for staff claiming at service desks
    districts: dict[Id, Count] | None = Field(default=None, max_length=100)  # split of the rest


class RoundFile(_Strict):
    id: Id
    number: Annotated[int, Field(ge=1, le=10_000)]
    name: Text
    opens_at: datetime
    claim_closes_at: datetime
    issuance: Annotated[IssuanceMode, Field(strict=False)]
    validity: ValidityFile
    budget_yuan: BudgetYuan | None = None
    voucher_count: Count | None = None
    limits: LimitsFile
    eligibility: EligibilityFile
    lottery: LotteryFile | None = None  # required when issuance = "lottery"
    waiting_room: WaitingRoomFile | None = None  # grab rounds only
    stated: dict[str, StatedFile] = Field(default_factory=dict, max_length=100)
    types: list[TypeFile] = Field(min_length=1, max_length=1_000)


class CampaignFile(_Strict):
    campaign: CampaignHead
    categories: list[CategoryFile] = Field(min_length=1, max_length=100)
    checkout: CheckoutFile
    refunds: RefundsFile
    rollover: RolloverFile
    rounds: list[RoundFile] = Field(min_length=1, max_length=1_000)
