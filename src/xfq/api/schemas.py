"""What the API accepts and answers. Writable fields are listed here and nowhere else."""

from __future__ import annotations

import re
from datetime import date, datetime, tzinfo
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from xfq.domain.campaign import Campaign, Round, VoucherType
from xfq.domain.voucher import Voucher

_STRICT = ConfigDict(extra="forbid", strict=True)
Key = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
# YYYY-MM-DD from 1970 to 2999: its next midnight in any time zone is still a datetime.
DAY_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


def _iso_day(value: object) -> object:
    # Pydantic would read "0" as a Unix time (1970-01-01); a day is only ever YYYY-MM-DD here.
    if isinstance(value, str) and not re.fullmatch(DAY_PATTERN, value):
        raise ValueError("a day is written YYYY-MM-DD, from 1970 to 2999")
    return value


Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    Path(
        description="A day in the campaign's time zone, YYYY-MM-DD.",
        json_schema_extra={"pattern": DAY_PATTERN},
    ),
]


def _whole_number(value: object) -> object:
    # JSON Schema counts 17800.0 as an integer, so the published schema allows it; it is taken
    # exactly. 17800.5 and "17800" stay refused (the models are strict).
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


Fen = Annotated[int, BeforeValidator(_whole_number)]  # an amount of money in fen


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: str


PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}, "description": why}
    for code, why in (
        (400, "The body could not be read"),
        (401, "No valid credentials"),
        (403, "Not allowed for this role"),
        (404, "Not found"),
        (409, "Not possible now"),
        (413, "The body is larger than the server takes"),
        (422, "The request is not valid"),
        (429, "Too many requests; see Retry-After"),
        (503, "Try again shortly"),
    )
}


class VoucherTypeOut(BaseModel):
    id: str
    category: str
    label: str
    threshold_fen: int
    discount_fen: int
    count: int
    remaining: int
    per_person: int


class RoundOut(BaseModel):
    id: str
    name: str
    opens_at: datetime
    claim_closes_at: datetime
    types: list[VoucherTypeOut]


class CategoryOut(BaseModel):
    id: str
    name: str
    name_en: str


class CampaignOut(BaseModel):
    id: str
    name: str
    city: str
    timezone: str
    categories: list[CategoryOut]
    rounds: list[RoundOut]


class ClaimIn(BaseModel):
    model_config = _STRICT
    type_id: str = Field(min_length=1, max_length=64)


class VoucherOut(BaseModel):
    id: str
    type_id: str
    round_id: str
    category: str
    label: str
    threshold_fen: int
    discount_fen: int
    state: str
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime


class ClaimOut(BaseModel):
    code: str
    reason: str = ""
    remaining: int | None = None
    voucher: VoucherOut | None = None


class WalletOut(BaseModel):
    person_id: str
    vouchers: list[VoucherOut]


class TillCodeOut(BaseModel):
    code: str
    expires_at: datetime
    qr_svg: str | None


class OrderIn(BaseModel):
    model_config = _STRICT
    list_price_fen: Fen = Field(gt=0, le=10_000_000_000)
    merchant_promotion_fen: Fen = Field(default=0, ge=0, le=10_000_000_000)


class QuoteIn(BaseModel):
    model_config = _STRICT
    code: str = Field(min_length=1, max_length=512)
    order: OrderIn


class QuoteOut(BaseModel):
    code: str
    message: str
    voucher_id: str | None
    discount_fen: int
    customer_pays_fen: int
    shortfall_fen: int


class RedeemIn(BaseModel):
    model_config = _STRICT
    code: str = Field(min_length=1, max_length=512)
    order_ref: str = Key
    order: OrderIn


class RedemptionOut(BaseModel):
    id: str
    voucher_id: str
    order_ref: str
    list_price_fen: int
    merchant_promotion_fen: int
    discount_fen: int
    customer_pays_fen: int
    redeemed_at: datetime
    state: str


class RedeemOut(BaseModel):
    code: str
    message: str
    redemption: RedemptionOut | None = None


class RefundIn(BaseModel):
    model_config = _STRICT
    refund_fen: Fen = Field(gt=0, le=10_000_000_000)


class RefundOut(BaseModel):
    code: str
    message: str
    outcome: str | None = None


class SpecIn(BaseModel):
    model_config = _STRICT
    toml: str = Field(min_length=1, max_length=1_000_000)


MERCHANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"  # what enrollment accepts
KEY_ID_PATTERN = r"^[A-Za-z0-9_-]+$"  # what approval issues: mk_ and url-safe base64


class MerchantIn(BaseModel):
    model_config = _STRICT
    id: str = Field(min_length=1, max_length=64, pattern=MERCHANT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)


class MerchantOut(BaseModel):
    id: str
    name: str
    category: str
    status: str


class MerchantKeyOut(BaseModel):
    merchant_id: str
    key_id: str
    secret: str = Field(description="Shown once; the till signs requests with it")


class MerchantKeyListedOut(BaseModel):
    key_id: str
    created_at: datetime = Field(description="When an approval issued it (UTC)")
    revoked_at: datetime | None = Field(description="When it was revoked (UTC); null: it works")


class MerchantKeyRevokedOut(BaseModel):
    merchant_id: str
    key_id: str
    revoked_at: datetime = Field(description="When it was first revoked (UTC)")
    refused_everywhere_within_s: float = Field(
        description="Every API worker process refuses the key at most this long after the answer"
    )


def voucher_out(voucher: Voucher, vtype: VoucherType, tz: tzinfo) -> VoucherOut:
    """A voucher as a person reads it, with times in the campaign's time zone."""
    times = (voucher.issued_at, voucher.valid_from, voucher.valid_until)
    return VoucherOut(**_voucher_fields(voucher, vtype, tuple(t.astimezone(tz) for t in times)))


def _voucher_fields(voucher: Voucher, vtype: VoucherType, times: tuple[Any, ...]) -> dict[str, Any]:
    """The voucher's fields, its three times (issued, valid from, until) as given."""
    issued_at, valid_from, valid_until = times
    return {
        "id": voucher.id,
        "type_id": vtype.id,
        "round_id": voucher.round_id,
        "category": voucher.category,
        "label": vtype.label,
        "threshold_fen": vtype.threshold_fen,
        "discount_fen": vtype.discount_fen,
        "state": voucher.state.value,
        "issued_at": issued_at,
        "valid_from": valid_from,
        "valid_until": valid_until,
    }


def claim_body(
    code: str, reason: str, remaining: int | None, voucher: dict[str, Any] | None
) -> dict[str, Any]:
    """`ClaimOut(...).model_dump(mode="json")`, built directly: the claim route's answer
    without two pydantic passes per claim (tests compare the two)."""
    return {"code": code, "reason": reason, "remaining": remaining, "voucher": voucher}


def voucher_body(voucher: Voucher, vtype: VoucherType, tz: tzinfo) -> dict[str, Any]:
    """`voucher_out(...).model_dump(mode="json")`, built directly: a claimed voucher is
    usable from its claim to its round's end, so two of its three times are known already."""
    issued_at = json_time(voucher.issued_at.astimezone(tz))
    valid_from = (
        issued_at
        if voucher.valid_from == voucher.issued_at
        else _local_json_time(voucher.valid_from, tz)
    )
    valid_until = _local_json_time(voucher.valid_until, tz)
    return _voucher_fields(voucher, vtype, (issued_at, valid_from, valid_until))


@lru_cache(maxsize=256)  # the ends of validity: a few per round
def _local_json_time(at: datetime, tz: tzinfo) -> str:
    return json_time(at.astimezone(tz))


def json_time(at: datetime) -> str:
    """A time as pydantic writes it in JSON: ISO 8601, "Z" for UTC."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def campaign_out(campaign: Campaign, remaining: dict[str, int]) -> CampaignOut:
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        city=campaign.city,
        timezone=campaign.timezone_name,
        categories=[
            CategoryOut(id=c.id, name=c.name, name_en=c.name_en) for c in campaign.categories
        ],
        rounds=[_round_out(r, remaining) for r in campaign.rounds],
    )


def _round_out(rnd: Round, remaining: dict[str, int]) -> RoundOut:
    return RoundOut(
        id=rnd.id,
        name=rnd.name,
        opens_at=rnd.opens_at,
        claim_closes_at=rnd.claim_closes_at,
        types=[
            VoucherTypeOut(
                id=t.id,
                category=t.category,
                label=t.label,
                threshold_fen=t.threshold_fen,
                discount_fen=t.discount_fen,
                count=t.count,
                remaining=remaining[t.id],
                per_person=t.per_person,
            )
            for t in rnd.types
        ],
    )
