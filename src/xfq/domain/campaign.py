"""A campaign, its rounds and their voucher types: the rules every other part reads."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cached_property, lru_cache

from xfq.domain.eligibility import Eligibility
from xfq.domain.errors import UnknownObject
from xfq.domain.money import format_yuan_short
from xfq.domain.waiting_room import WaitingRoomRules


class IssuanceMode(StrEnum):
    GRAB = "grab"  # first come, first served at the opening second
    LOTTERY = "lottery"  # registration, then a verifiable draw (see domain/lottery.py)


class ValidityKind(StrEnum):
    CALENDAR_DAYS = "calendar_days"  # N days counting the round's opening day
    DAYS_AFTER_CLAIM = "days_after_claim"  # N days counting the day of the claim
    FIXED = "fixed"  # from one date through another


class ThresholdBase(StrEnum):
    """Which amount a voucher's threshold (满X) is compared with."""

    AFTER_MERCHANT_PROMOTION = "after_merchant_promotion"
    LIST_PRICE = "list_price"


class PartialRefund(StrEnum):
    FORFEIT = "forfeit"  # the voucher is used up
    KEEP_IF_THRESHOLD_MET = "keep_if_threshold_met"  # returns only if the rest is below 满X
    RESTORE = "restore"  # the voucher returns to the wallet


class RolloverSource(StrEnum):
    UNCLAIMED = "unclaimed"
    EXPIRED = "expired"


@lru_cache(maxsize=512)  # a few days per round; a claim's window needs one (~4 µs uncached)
def start_of_day(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


@lru_cache(maxsize=64)
def _local_day(at: datetime, tz: tzinfo) -> date:
    """The calendar day of a round's opening (a handful per campaign) in the campaign's zone."""
    return at.astimezone(tz).date()


@dataclass(frozen=True)
class ValidityRule:
    kind: ValidityKind
    days: int | None = None
    valid_from: date | None = None
    valid_through: date | None = None

    def window(
        self, opens_at: datetime, claimed_at: datetime, tz: tzinfo
    ) -> tuple[datetime, datetime]:
        """The half-open interval [from, until) in which a voucher claimed then is usable.

        Validity ends at midnight after the last usable day, in the campaign's time zone.
        """
        if self.kind is ValidityKind.FIXED:
            assert self.valid_from is not None and self.valid_through is not None
            start = max(claimed_at, start_of_day(self.valid_from, tz))
            return start, start_of_day(self.valid_through + timedelta(days=1), tz)
        assert self.days is not None and self.days > 0
        if self.kind is ValidityKind.CALENDAR_DAYS:
            first_day = _local_day(opens_at, tz)
        else:
            first_day = claimed_at.astimezone(tz).date()
        return claimed_at, start_of_day(first_day + timedelta(days=self.days), tz)

    def last_usable_day(self, opens_at: datetime, claim_closes_at: datetime, tz: tzinfo) -> date:
        """The latest calendar day on which any voucher of the round can be used."""
        latest_claim = claim_closes_at - timedelta(microseconds=1)
        _, until = self.window(opens_at, latest_claim, tz)
        return (until - timedelta(microseconds=1)).astimezone(tz).date()


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    name_en: str


@dataclass(frozen=True)
class PersonLimits:
    """How many vouchers one person may hold from a round: per type, per category, per round.

    `per_type` is the default of each type's own `per_person`, which is what a claim checks.
    """

    per_type: int
    per_category: int | None
    per_round: int | None
    per_household: int | None = None  # vouchers of the round across a declared household


@dataclass(frozen=True)
class LotteryRules:
    """When citizens register and when the draw is, and caps on wins across lottery rounds.

    A win is one voucher. `max_wins_per_week` counts this round's wins with those of the
    campaign's other lottery rounds drawn in the same ISO week (campaign's zone);
    `max_wins_per_campaign` counts every lottery round of the campaign.
    """

    registration_opens_at: datetime
    registration_closes_at: datetime
    draw_at: datetime
    max_wins_per_week: int | None = None
    max_wins_per_campaign: int | None = None

    def registration_open(self, now: datetime) -> bool:
        return self.registration_opens_at <= now < self.registration_closes_at


@dataclass(frozen=True)
class VoucherType:
    id: str
    round_id: str
    category: str
    threshold_fen: int
    discount_fen: int
    count: int
    per_person: int
    channel: str
    assisted: int = 0  # of `count`, reserved for staff claiming at service desks
    districts: tuple[tuple[str, int], ...] = ()  # the rest split by district (domain/quota.py)

    def __post_init__(self) -> None:
        assert 0 < self.discount_fen < self.threshold_fen, self
        assert self.count > 0 and self.per_person > 0, self
        assert 0 <= self.assisted + sum(n for _, n in self.districts) <= self.count, self

    @property
    def value_fen(self) -> int:
        return self.count * self.discount_fen

    @cached_property  # asked for in every refusal's message, hundreds of thousands of times
    def label(self) -> str:
        """满180减40: spend at least 180 yuan, get 40 off."""
        return f"满{format_yuan_short(self.threshold_fen)}减{format_yuan_short(self.discount_fen)}"


@dataclass(frozen=True)
class StatedTotal:
    """A count and value published by the city, which the voucher types must add up to."""

    count: int
    value_fen: int


@dataclass(frozen=True)
class Round:
    id: str
    number: int
    name: str
    opens_at: datetime
    claim_closes_at: datetime
    validity: ValidityRule
    issuance: IssuanceMode
    limits: PersonLimits
    eligibility: Eligibility
    types: tuple[VoucherType, ...]
    stated_total: StatedTotal | None = None
    stated_by_category: dict[str, StatedTotal] = field(default_factory=dict)
    lottery: LotteryRules | None = None  # set exactly when issuance is "lottery"
    waiting_room: WaitingRoomRules | None = None  # optional, grab rounds only

    @property
    def count(self) -> int:
        return sum(t.count for t in self.types)

    @property
    def budget_fen(self) -> int:
        return sum(t.value_fen for t in self.types)

    def is_open(self, now: datetime) -> bool:
        return self.opens_at <= now < self.claim_closes_at


@dataclass(frozen=True)
class CheckoutRules:
    threshold_base: ThresholdBase
    one_voucher_per_order: bool


@dataclass(frozen=True)
class RefundPolicy:
    full_refund_restores: bool
    partial: PartialRefund


@dataclass(frozen=True)
class RolloverPolicy:
    enabled: bool
    sources: frozenset[RolloverSource]
    into: str = "next"  # "next" (the next round by number) or the id of a later round


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    city: str
    timezone_name: str
    tz: tzinfo
    categories: tuple[Category, ...]
    rounds: tuple[Round, ...]
    checkout: CheckoutRules
    refunds: RefundPolicy
    rollover: RolloverPolicy

    @cached_property
    def _types(self) -> dict[str, tuple[Round, VoucherType]]:
        return {t.id: (r, t) for r in self.rounds for t in r.types}

    def round(self, round_id: str) -> Round:
        for r in self.rounds:
            if r.id == round_id:
                return r
        raise UnknownObject(f"no round '{round_id}' in campaign '{self.id}'")

    def voucher_type(self, type_id: str) -> tuple[Round, VoucherType]:
        try:
            return self._types[type_id]
        except KeyError:
            raise UnknownObject(f"no voucher type '{type_id}' in campaign '{self.id}'") from None

    def category(self, category_id: str) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise UnknownObject(f"no category '{category_id}' in campaign '{self.id}'")

    def with_claim_window(
        self, round_id: str, opens_at: datetime, claim_closes_at: datetime
    ) -> Campaign:
        """This campaign with one round's claim window moved (opened early or cancelled)."""
        assert opens_at <= claim_closes_at, (opens_at, claim_closes_at)
        rounds = tuple(
            replace(r, opens_at=opens_at, claim_closes_at=claim_closes_at)
            if r.id == round_id
            else r
            for r in self.rounds
        )
        self.round(round_id)  # unknown round: UnknownObject
        return replace(self, rounds=rounds)

    def usable_window(self, type_id: str, claimed_at: datetime) -> tuple[datetime, datetime]:
        rnd, _ = self.voucher_type(type_id)
        return rnd.validity.window(rnd.opens_at, claimed_at, self.tz)
