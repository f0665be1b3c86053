"""The figures of a campaign per voucher type, per category and per round.

`summarize_campaign` computes them once; `summary_json` and the `*_rows` helpers only present
them, so the table and the JSON can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from xfq.domain.campaign import Campaign, LotteryRules, PersonLimits, Round, VoucherType
from xfq.domain.money import format_yuan
from xfq.domain.waiting_room import WaitingRoomRules
from xfq.spec.display import yuan_text

Row = tuple[str, str, str, str, str]
COLUMNS: Row = ("voucher type", "category", "voucher", "count", "value (yuan)")


@dataclass(frozen=True)
class TypeLine:
    type_id: str
    category: str
    label: str
    threshold_fen: int
    discount_fen: int
    count: int
    value_fen: int
    assisted: int = 0
    districts: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class CategoryLine:
    category: str
    name: str
    count: int
    value_fen: int


@dataclass(frozen=True)
class RoundSummary:
    round_id: str
    number: int
    name: str
    timezone: str
    opens_at: datetime
    claim_closes_at: datetime
    last_usable_day: date
    limits: PersonLimits
    types: tuple[TypeLine, ...]
    categories: tuple[CategoryLine, ...]
    count: int
    value_fen: int
    stated: tuple[str, ...]  # which published totals were checked: "round", category ids
    issuance: str = "grab"
    lottery: LotteryRules | None = None
    waiting_room: WaitingRoomRules | None = None


@dataclass(frozen=True)
class CampaignSummary:
    campaign_id: str
    name: str
    city: str
    timezone: str
    rounds: tuple[RoundSummary, ...]


def summarize_campaign(campaign: Campaign) -> CampaignSummary:
    return CampaignSummary(
        campaign_id=campaign.id,
        name=campaign.name,
        city=campaign.city,
        timezone=campaign.timezone_name,
        rounds=tuple(_round(campaign, r) for r in campaign.rounds),
    )


def _round(campaign: Campaign, rnd: Round) -> RoundSummary:
    stated = ("round",) if rnd.stated_total is not None else ()
    return RoundSummary(
        round_id=rnd.id,
        number=rnd.number,
        name=rnd.name,
        timezone=campaign.timezone_name,
        opens_at=rnd.opens_at,
        claim_closes_at=rnd.claim_closes_at,
        last_usable_day=rnd.validity.last_usable_day(
            rnd.opens_at, rnd.claim_closes_at, campaign.tz
        ),
        limits=rnd.limits,
        types=tuple(_type_line(t) for t in rnd.types),
        categories=_category_lines(campaign, rnd),
        count=rnd.count,
        value_fen=rnd.budget_fen,
        stated=stated + tuple(rnd.stated_by_category),
        issuance=str(rnd.issuance),
        lottery=rnd.lottery,
        waiting_room=rnd.waiting_room,
    )


def _type_line(vtype: VoucherType) -> TypeLine:
    return TypeLine(
        type_id=vtype.id,
        category=vtype.category,
        label=vtype.label,
        threshold_fen=vtype.threshold_fen,
        discount_fen=vtype.discount_fen,
        count=vtype.count,
        value_fen=vtype.value_fen,
        assisted=vtype.assisted,
        districts=vtype.districts,
    )


def _category_lines(campaign: Campaign, rnd: Round) -> tuple[CategoryLine, ...]:
    """Subtotals in the campaign's order of categories, for the categories the round uses."""
    lines = []
    for category in campaign.categories:
        types = [t for t in rnd.types if t.category == category.id]
        if types:
            count = sum(t.count for t in types)
            value_fen = sum(t.value_fen for t in types)
            lines.append(CategoryLine(category.id, category.name, count, value_fen))
    return tuple(lines)


def type_rows(summary: RoundSummary) -> list[Row]:
    return [
        (t.type_id, t.category, t.label, f"{t.count:,}", yuan_text(t.value_fen))
        for t in summary.types
    ]


def category_rows(summary: RoundSummary) -> list[Row]:
    return [
        (f"subtotal {c.category}", c.name, "", f"{c.count:,}", yuan_text(c.value_fen))
        for c in summary.categories
    ]


def total_row(summary: RoundSummary) -> Row:
    return (f"total {summary.round_id}", "", "", f"{summary.count:,}", yuan_text(summary.value_fen))


def _money(prefix: str, fen: int) -> dict[str, Any]:
    return {f"{prefix}_fen": fen, f"{prefix}_yuan": format_yuan(fen)}


def summary_json(summary: CampaignSummary) -> dict[str, Any]:
    """The summary as plain JSON values: money both as integer fen and as yuan text."""
    return {
        "campaign": {
            "id": summary.campaign_id,
            "name": summary.name,
            "city": summary.city,
            "timezone": summary.timezone,
        },
        "rounds": [_round_json(r) for r in summary.rounds],
    }


def _round_json(rs: RoundSummary) -> dict[str, Any]:
    limits = rs.limits
    return {
        "id": rs.round_id,
        "number": rs.number,
        "name": rs.name,
        "opens_at": rs.opens_at.isoformat(),
        "claim_closes_at": rs.claim_closes_at.isoformat(),
        "timezone": rs.timezone,
        "last_usable_day": rs.last_usable_day.isoformat(),
        "limits": {
            "per_type": limits.per_type,
            "per_category": limits.per_category,
            "per_round": limits.per_round,
            "per_household": limits.per_household,
        },
        "issuance": rs.issuance,
        "lottery": _lottery_json(rs.lottery),
        "waiting_room": None
        if rs.waiting_room is None
        else {
            "opens_before_minutes": int(rs.waiting_room.opens_before.total_seconds()) // 60,
            "admit_per_second": rs.waiting_room.admit_per_second,
            "token_ttl_seconds": int(rs.waiting_room.token_ttl.total_seconds()),
        },
        "count": rs.count,
        **_money("value", rs.value_fen),
        "stated_totals_checked": list(rs.stated),
        "categories": [
            {"id": c.category, "name": c.name, "count": c.count, **_money("value", c.value_fen)}
            for c in rs.categories
        ],
        "types": [_type_json(t) for t in rs.types],
    }


def _lottery_json(lottery: LotteryRules | None) -> dict[str, Any] | None:
    if lottery is None:
        return None
    return {
        "registration_opens_at": lottery.registration_opens_at.isoformat(),
        "registration_closes_at": lottery.registration_closes_at.isoformat(),
        "draw_at": lottery.draw_at.isoformat(),
        "max_wins_per_week": lottery.max_wins_per_week,
        "max_wins_per_campaign": lottery.max_wins_per_campaign,
    }


def _type_json(line: TypeLine) -> dict[str, Any]:
    return {
        "assisted": line.assisted,
        "districts": dict(line.districts),
        "id": line.type_id,
        "category": line.category,
        "label": line.label,
        **_money("threshold", line.threshold_fen),
        **_money("discount", line.discount_fen),
        "count": line.count,
        **_money("value", line.value_fen),
    }
