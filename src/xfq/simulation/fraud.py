"""Synthetic cash-out fraud mixed into the demo: colluding merchants and the payers they recruit.

A colluding merchant recruits a ring of voucher holders of its category and rings up fake sales
with their vouchers, playing two of four schemes:
- `hug`: every fake order is rung up at the threshold or at most 1% above it;
- `burst`: the ring's vouchers are redeemed in the first minutes after the round opens;
- `cycle`: redeemed, refunded in full within the hour (the voucher comes back), redeemed again;
- `far`: the ring lives in another city, over 80 km away.
Orders not shaped by `hug` look like honest baskets. A ring brings in between half and 1.2 times
the voucher orders an honest shop of the category gets in the week (at least 8): enough fake
sales to be worth the risk, too few to stand out by volume alone. The ground truth (who
colludes, with which schemes, which redemptions) is kept so a test can measure what the rules
find.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from xfq.domain.campaign import Campaign, VoucherType
from xfq.domain.checkout import CheckoutCode, Order
from xfq.domain.fraud import GeoPoint
from xfq.domain.voucher import Voucher
from xfq.ports import IdSource, Ledger
from xfq.services.checkout import RedeemRequest, redeem_unit
from xfq.services.refund import RefundRequest, submit_refund
from xfq.simulation.population import SimMerchant
from xfq.simulation.week import USE_SHARE, WeekResult, plan_order

SCHEMES = ("hug", "burst", "cycle", "far")
RING_MIN = 8  # vouchers a colluding merchant gathers at least; at most ...
RING_MAX_SHARE = 1.2  # ... this many times an honest shop's voucher orders
CYCLES = 2  # redeem-and-refund rounds before the last redemption
REDEEM_EVERY = timedelta(minutes=40)  # a cycle: redeemed, refunded 20 minutes later, again
REFUND_AFTER = timedelta(minutes=20)
CITY = GeoPoint(37_870_000, 112_550_000)  # Taiyuan
CITY_RADIUS_E6 = 120_000  # about 13 km
ELSEWHERE = GeoPoint(39_900_000, 116_400_000)  # over 400 km away


@dataclass(frozen=True)
class Holding:
    """A voucher in someone's wallet, as the fraud plan needs it (in process or over HTTP)."""

    voucher_id: str
    person_id: str
    type_id: str


@dataclass
class FraudTruth:
    colluders: dict[str, tuple[str, ...]] = field(default_factory=dict)  # merchant -> schemes
    ring: dict[str, str] = field(default_factory=dict)  # person -> merchant
    redemption_ids: set[str] = field(default_factory=set)


def pick_colluders(
    merchants: list[SimMerchant], rate: float, rng: random.Random
) -> dict[str, tuple[str, ...]]:
    """About `rate` of each category's merchants (at least one while rate > 0), two schemes each."""
    chosen: dict[str, tuple[str, ...]] = {}
    if rate <= 0:
        return chosen
    by_category: dict[str, list[SimMerchant]] = {}
    for m in merchants:
        by_category.setdefault(m.category, []).append(m)
    for category in sorted(by_category):
        group = by_category[category]
        for m in rng.sample(group, max(1, round(rate * len(group)))):
            chosen[m.id] = tuple(sorted(rng.sample(SCHEMES, 2)))
    return chosen


def homes(holdings: list[Holding], truth: FraudTruth, rng: random.Random) -> dict[str, GeoPoint]:
    """A coarse home for every holder: in the city, or elsewhere for `far` rings."""
    far = {p for p, m in truth.ring.items() if "far" in truth.colluders[m]}
    return {h.person_id: _near(ELSEWHERE if h.person_id in far else CITY, rng) for h in holdings}


def shop_locations(merchants: list[SimMerchant], rng: random.Random) -> dict[str, GeoPoint]:
    return {m.id: _near(CITY, rng) for m in merchants}


def _near(centre: GeoPoint, rng: random.Random) -> GeoPoint:
    return GeoPoint(
        centre.lat_e6 + rng.randint(-CITY_RADIUS_E6, CITY_RADIUS_E6),
        centre.lon_e6 + rng.randint(-CITY_RADIUS_E6, CITY_RADIUS_E6),
    )


def recruit(
    campaign: Campaign,
    holdings: list[Holding],
    merchants: list[SimMerchant],
    colluders: dict[str, tuple[str, ...]],
    rng: random.Random,
) -> tuple[FraudTruth, dict[str, list[Holding]]]:
    """Each colluder's ring of vouchers, one per holder; a holder in a ring shops nowhere else."""
    truth = FraudTruth(colluders=dict(colluders))
    category_of = {m.id: m.category for m in merchants}
    pool = list(holdings)
    rng.shuffle(pool)
    rings: dict[str, list[Holding]] = {m: [] for m in colluders}
    per_category: dict[str, int] = {}
    for h in holdings:
        category = campaign.voucher_type(h.type_id)[1].category
        per_category[category] = per_category.get(category, 0) + 1
    shops = {c: sum(1 for m in merchants if m.category == c) for c in per_category}
    for merchant_id in sorted(colluders):
        category = category_of[merchant_id]
        honest_orders = per_category.get(category, 0) * USE_SHARE / max(shops.get(category, 1), 1)
        size = max(RING_MIN, round(honest_orders * rng.uniform(0.5, RING_MAX_SHARE)))
        for h in pool:
            if len(rings[merchant_id]) == size:
                break
            if h.person_id in truth.ring:
                continue
            if campaign.voucher_type(h.type_id)[1].category == category:
                rings[merchant_id].append(h)
                truth.ring[h.person_id] = merchant_id
    return truth, rings


def ring_start(
    campaign: Campaign, schemes: tuple[str, ...], round_id: str, rng: random.Random
) -> datetime:
    """When a ring starts ringing up: minutes after the opening for a burst, else hours."""
    opened = campaign.round(round_id).opens_at
    if "burst" in schemes:
        return opened + timedelta(minutes=rng.randint(1, 20))
    return opened + timedelta(hours=rng.randint(3, 60), minutes=rng.randint(0, 59))


def fake_order(vtype: VoucherType, schemes: tuple[str, ...], rng: random.Random) -> Order:
    if "hug" in schemes:
        extra = vtype.threshold_fen * rng.randint(0, 100) // 10_000  # up to 1% above
        return Order(vtype.threshold_fen + extra, 0)
    honest_like = SimMerchant("", "", vtype.category, 0)
    order = plan_order(vtype, honest_like, rng, WeekResult())
    return order or Order(vtype.threshold_fen + 1000, 0)


@dataclass(frozen=True)
class _RingSale:
    merchant_id: str
    voucher: Voucher
    vtype: VoucherType
    schemes: tuple[str, ...]
    start: datetime
    cycles: int


def play_rings(
    ledger: Ledger,
    campaign: Campaign,
    ids: IdSource,
    rings: dict[str, list[Holding]],
    vouchers: dict[str, Voucher],
    truth: FraudTruth,
    rng: random.Random,
) -> None:
    """Ring up every ring's fake sales (and refund cycles) through the checkout services.

    Each cycle's redemptions (then refunds) are queued together, so the ledger's writer commits
    them in batches; every write carries its own time, so their order does not matter.
    """
    sales = []
    for merchant_id, ring in sorted(rings.items()):
        schemes = truth.colluders[merchant_id]
        cycles = CYCLES if "cycle" in schemes else 0
        for h in ring:
            v = vouchers[h.voucher_id]
            start = max(v.valid_from, ring_start(campaign, schemes, v.round_id, rng))
            vtype = campaign.voucher_type(v.type_id)[1]
            sales.append(_RingSale(merchant_id, v, vtype, schemes, start, cycles))
    for cycle in range(CYCLES + 1):
        sales = _cycle(
            ledger, campaign, ids, [s for s in sales if s.cycles >= cycle], cycle, truth, rng
        )


def _cycle(
    ledger: Ledger,
    campaign: Campaign,
    ids: IdSource,
    sales: list[_RingSale],
    cycle: int,
    truth: FraudTruth,
    rng: random.Random,
) -> list[_RingSale]:
    """Redeem every sale's voucher once more (and refund it if another cycle follows); the
    sales whose voucher could be used (one past its validity drops out)."""
    redeemed = []
    for sale in sales:
        order = fake_order(sale.vtype, sale.schemes, rng)
        v = sale.voucher
        request = RedeemRequest(
            sale.merchant_id, v.person_id, v.id, ids.new_id("o"), order, ids.new_id("k")
        )
        when = sale.start + cycle * REDEEM_EVERY
        redeemed.append((sale, when, ledger.write(redeem_unit(campaign, ids, when, request))))
    kept, refunds = [], []
    for sale, when, future in redeemed:
        answer = future.result()
        if answer.code is not CheckoutCode.OK or answer.redemption is None:
            continue
        r = answer.redemption
        truth.redemption_ids.add(r.id)
        kept.append(sale)
        if cycle < sale.cycles:
            refund = RefundRequest(sale.merchant_id, r.id, r.threshold_base_fen, ids.new_id("k"))
            refunds.append(submit_refund(ledger, campaign, ids, when + REFUND_AFTER, refund))
    for f in refunds:
        f.result()
    return kept


FRAUD_RATE = 0.03  # share of each category's merchants that collude (the demo's default)
Locate = Callable[[str, dict[str, GeoPoint]], None]  # (kind, id -> place): store them


@dataclass(frozen=True)
class Planted:
    truth: FraudTruth
    honest: list[Voucher]  # the vouchers left to the honest week


def plant_fraud(
    ledger: Ledger,
    campaign: Campaign,
    ids: IdSource,
    vouchers: list[Voucher],
    merchants: list[SimMerchant],
    seed: int,
    rate: float,
    locate: Locate,
) -> Planted:
    """Choose colluders, recruit their rings, store everyone's coarse home, play the fraud."""
    rng = random.Random(seed + 7)
    holdings = [Holding(v.id, v.person_id, v.type_id) for v in vouchers]
    truth, rings = plan_rings(campaign, holdings, merchants, rate, rng, locate)
    play_rings(ledger, campaign, ids, rings, {v.id: v for v in vouchers}, truth, rng)
    honest = [v for v in vouchers if v.person_id not in truth.ring]
    return Planted(truth, honest)


def plan_rings(
    campaign: Campaign,
    holdings: list[Holding],
    merchants: list[SimMerchant],
    rate: float,
    rng: random.Random,
    locate: Locate,
) -> tuple[FraudTruth, dict[str, list[Holding]]]:
    """Choose the colluders, recruit their rings and store everyone's coarse home."""
    colluders = pick_colluders(merchants, rate, rng)
    truth, rings = recruit(campaign, holdings, merchants, colluders, rng)
    locate("merchant", shop_locations(merchants, rng))
    locate("person", homes(holdings, truth, rng))
    return truth, rings
