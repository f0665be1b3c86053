"""The validity week: holders shop at merchants of each category; some orders are refunded."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from xfq.adapters.clock import SimulatedClock
from xfq.domain.campaign import Campaign, VoucherType
from xfq.domain.checkout import CheckoutCode, Order
from xfq.domain.voucher import Voucher
from xfq.ports import IdSource, Ledger
from xfq.services.checkout import RedeemAnswer, RedeemRequest, redeem_unit
from xfq.services.refund import RefundAnswer, RefundRequest, submit_refund
from xfq.simulation.population import SimMerchant

USE_SHARE = 0.88  # holders who use their voucher within the week
FULL_REFUND_SHARE = 0.03
PARTIAL_REFUND_SHARE = 0.02
TOP_UP_SHARE = 0.7  # told "spend X more", this share adds items to reach the threshold


@dataclass
class WeekResult:
    redeem_answers: Counter[str] = field(default_factory=Counter)
    refund_outcomes: Counter[str] = field(default_factory=Counter)
    topped_up: int = 0
    with_promotion: int = 0


@dataclass(frozen=True)
class Purchase:
    voucher: Voucher
    merchant: SimMerchant
    order: Order


def run_week(
    ledger: Ledger,
    campaign: Campaign,
    clock: SimulatedClock,
    ids: IdSource,
    vouchers: list[Voucher],
    merchants: list[SimMerchant],
    seed: int,
    progress: Callable[[int], None] = lambda _n: None,
) -> WeekResult:
    rng = random.Random(seed + 2)
    result = WeekResult()
    by_category: dict[str, list[SimMerchant]] = {}
    for m in merchants:
        by_category.setdefault(m.category, []).append(m)
    days = validity_days(vouchers, campaign.tz)
    plan = [(v, day_of_use(days, rng)) for v in vouchers]
    for day in days:
        clock.set(datetime.combine(day, time(14), tzinfo=campaign.tz))
        todays = [v for v, d in plan if d == day]
        purchases = [plan_purchase(campaign, v, by_category, rng, result) for v in todays]
        redeemed = _redeem_all(ledger, campaign, clock, ids, [p for p in purchases if p], result)
        clock.set(datetime.combine(day, time(19), tzinfo=campaign.tz))
        _refund_some(ledger, campaign, clock, ids, redeemed, rng, result)
        progress(len(todays))
    return result


def validity_days(vouchers: list[Voucher], tz: tzinfo) -> list[date]:
    first = min(v.valid_from for v in vouchers).astimezone(tz).date()
    last = (max(v.valid_until for v in vouchers) - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_of_use(days: list[date], rng: random.Random) -> date | None:
    if rng.random() > USE_SHARE:
        return None
    weights = [3 if d.weekday() >= 5 or (d.month, d.day) == (3, 8) else 1 for d in days]
    return rng.choices(days, weights)[0]


def plan_purchase(
    campaign: Campaign,
    voucher: Voucher,
    by_category: dict[str, list[SimMerchant]],
    rng: random.Random,
    result: WeekResult,
) -> Purchase | None:
    vtype = campaign.voucher_type(voucher.type_id)[1]
    merchant = rng.choice(by_category[vtype.category])
    order = plan_order(vtype, merchant, rng, result)
    return None if order is None else Purchase(voucher, merchant, order)


def plan_order(
    vtype: VoucherType, merchant: SimMerchant, rng: random.Random, result: WeekResult
) -> Order | None:
    """A basket around the threshold, after the merchant's own promotion; None if abandoned."""
    list_fen = int(vtype.threshold_fen * rng.uniform(0.85, 2.2)) // 100 * 100
    promo_fen = list_fen * merchant.promotion_pct // 100
    if promo_fen:
        result.with_promotion += 1
    payable = list_fen - promo_fen
    if payable < vtype.threshold_fen:  # told "spend X more" at the till
        if rng.random() > TOP_UP_SHARE:
            return None
        result.topped_up += 1
        keep_pct = max(100 - merchant.promotion_pct, 1)
        list_fen += (vtype.threshold_fen - payable) * 100 // keep_pct + 100
        promo_fen = list_fen * merchant.promotion_pct // 100
    return Order(list_fen, promo_fen)


def _redeem_all(
    ledger: Ledger,
    campaign: Campaign,
    clock: SimulatedClock,
    ids: IdSource,
    purchases: list[Purchase],
    result: WeekResult,
) -> list[RedeemAnswer]:
    """Every till redeems the voucher its customer shows; the redemption quotes as it goes."""
    now = clock.now()
    requests = [
        RedeemRequest(
            merchant_id=p.merchant.id,
            person_id=p.voucher.person_id,
            voucher_id=p.voucher.id,
            order_ref=ids.new_id("o"),
            order=p.order,
            idempotency_key=ids.new_id("k"),
        )
        for p in purchases
    ]
    outcomes: list[tuple[bool, object]] = []
    all_in = threading.Event()

    def done(ok: bool, value: object) -> None:
        outcomes.append((ok, value))  # list.append is atomic
        if len(outcomes) == len(requests):
            all_in.set()

    for r in requests:
        ledger.send(redeem_unit(campaign, ids, now, r), done)
    if requests:
        all_in.wait()
    failures = [value for ok, value in outcomes if not ok]
    if failures:
        raise RuntimeError(f"{len(failures)} redemptions failed, first: {failures[0]}")
    answers = [value for _, value in outcomes if isinstance(value, RedeemAnswer)]
    result.redeem_answers.update(a.code.value for a in answers)
    return [a for a in answers if a.code is CheckoutCode.OK]


def _refund_some(
    ledger: Ledger,
    campaign: Campaign,
    clock: SimulatedClock,
    ids: IdSource,
    redeemed: list[RedeemAnswer],
    rng: random.Random,
    result: WeekResult,
) -> None:
    futures: list[Future[RefundAnswer]] = []
    for answer in redeemed:
        r = answer.redemption
        assert r is not None
        draw = rng.random()
        if draw < FULL_REFUND_SHARE:
            refund_fen = r.threshold_base_fen
        elif draw < FULL_REFUND_SHARE + PARTIAL_REFUND_SHARE:
            refund_fen = max(r.threshold_base_fen // 4 // 100 * 100, 1)
        else:
            continue
        request = RefundRequest(r.merchant_id, r.id, refund_fen, ids.new_id("k"))
        futures.append(submit_refund(ledger, campaign, ids, clock.now(), request))
    wait(futures)
    for f in futures:
        outcome = f.result().outcome
        result.refund_outcomes[outcome.value if outcome else f.result().code.value] += 1
