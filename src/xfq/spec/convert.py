"""A checked campaign file becomes the frozen domain model; yuan become fen here."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from xfq.domain.campaign import (
    Campaign,
    Category,
    CheckoutRules,
    LotteryRules,
    PersonLimits,
    RefundPolicy,
    RolloverPolicy,
    Round,
    StatedTotal,
    ValidityRule,
    VoucherType,
)
from xfq.domain.eligibility import Eligibility
from xfq.domain.money import yuan_to_fen
from xfq.domain.waiting_room import WaitingRoomRules
from xfq.spec.model import (
    CampaignFile,
    LimitsFile,
    LotteryFile,
    RoundFile,
    StatedFile,
    TypeFile,
    WaitingRoomFile,
)


def as_aware(moment: datetime, tz: tzinfo) -> datetime:
    """A TOML local date-time is read in the campaign's zone; one with an offset is kept."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def to_campaign(spec: CampaignFile) -> Campaign:
    tz = ZoneInfo(spec.campaign.timezone)
    return Campaign(
        id=spec.campaign.id,
        name=spec.campaign.name,
        city=spec.campaign.city,
        timezone_name=spec.campaign.timezone,
        tz=tz,
        categories=tuple(Category(c.id, c.name, c.name_en) for c in spec.categories),
        rounds=tuple(_round(r, tz) for r in spec.rounds),
        checkout=CheckoutRules(
            threshold_base=spec.checkout.threshold_base,
            one_voucher_per_order=spec.checkout.one_voucher_per_order,
        ),
        refunds=RefundPolicy(
            full_refund_restores=spec.refunds.full_refund_restores,
            partial=spec.refunds.partial,
        ),
        rollover=RolloverPolicy(
            enabled=spec.rollover.enabled,
            sources=frozenset(spec.rollover.sources),
            into=spec.rollover.into,
        ),
    )


def _round(rnd: RoundFile, tz: tzinfo) -> Round:
    stated_total = None
    if rnd.voucher_count is not None and rnd.budget_yuan is not None:
        stated_total = StatedTotal(rnd.voucher_count, yuan_to_fen(rnd.budget_yuan))
    return Round(
        id=rnd.id,
        number=rnd.number,
        name=rnd.name,
        opens_at=as_aware(rnd.opens_at, tz),
        claim_closes_at=as_aware(rnd.claim_closes_at, tz),
        validity=ValidityRule(
            kind=rnd.validity.kind,
            days=rnd.validity.days,
            valid_from=rnd.validity.valid_from,
            valid_through=rnd.validity.valid_through,
        ),
        issuance=rnd.issuance,
        limits=_limits(rnd.limits),
        eligibility=Eligibility(
            residencies=frozenset(rnd.eligibility.residencies),
            require_in_city=rnd.eligibility.require_in_city,
        ),
        types=tuple(_voucher_type(t, rnd) for t in rnd.types),
        stated_total=stated_total,
        stated_by_category={key: _stated(value) for key, value in rnd.stated.items()},
        lottery=None if rnd.lottery is None else _lottery(rnd.lottery, tz),
        waiting_room=None if rnd.waiting_room is None else _waiting_room(rnd.waiting_room),
    )


def _waiting_room(room: WaitingRoomFile) -> WaitingRoomRules:
    return WaitingRoomRules(
        opens_before=timedelta(minutes=room.opens_before_minutes),
        admit_per_second=room.admit_per_second,
        token_ttl=timedelta(seconds=room.token_ttl_seconds),
    )


def _lottery(lottery: LotteryFile, tz: tzinfo) -> LotteryRules:
    return LotteryRules(
        registration_opens_at=as_aware(lottery.registration_opens_at, tz),
        registration_closes_at=as_aware(lottery.registration_closes_at, tz),
        draw_at=as_aware(lottery.draw_at, tz),
        max_wins_per_week=lottery.max_wins_per_week,
        max_wins_per_campaign=lottery.max_wins_per_campaign,
    )


def _limits(limits: LimitsFile) -> PersonLimits:
    return PersonLimits(
        per_type=limits.per_type,
        per_category=limits.per_category,
        per_round=limits.per_round,
        per_household=limits.per_household,
    )


def _stated(stated: StatedFile) -> StatedTotal:
    return StatedTotal(count=stated.count, value_fen=yuan_to_fen(stated.value_yuan))


def _voucher_type(vtype: TypeFile, rnd: RoundFile) -> VoucherType:
    return VoucherType(
        id=vtype.id,
        round_id=rnd.id,
        category=vtype.category,
        threshold_fen=yuan_to_fen(vtype.threshold_yuan),
        discount_fen=yuan_to_fen(vtype.discount_yuan),
        count=vtype.count,
        per_person=vtype.per_person or rnd.limits.per_type,
        channel=vtype.channel,
        assisted=vtype.assisted or 0,
        districts=tuple(sorted((vtype.districts or {}).items())),
    )
