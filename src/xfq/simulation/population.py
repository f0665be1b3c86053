"""A synthetic city: citizens with wishes and arrival times, and enrolled merchants."""

from __future__ import annotations

import random
from dataclasses import dataclass

from xfq.domain.campaign import Round
from xfq.domain.eligibility import Citizen, Residency

# Shares of who tries: mostly residents; a few without a known residency or outside the city.
_RESIDENCY_WEIGHTS = {
    Residency.PERMANENT: 0.80,
    Residency.WORK: 0.10,
    Residency.STUDY: 0.04,
    Residency.VISIT: 0.04,
    None: 0.02,
}
# How many people want each category, relative to its stock: retail is the crowded one.
_CATEGORY_APPEAL = {"retail": 1.0, "home": 0.25, "catering": 0.35, "online": 0.3}


@dataclass(frozen=True)
class SimCitizen:
    citizen: Citizen
    wishes: tuple[str, ...]  # voucher type ids in order of preference
    arrival_ms: int  # after the opening second
    double_tap: bool  # sends each claim twice with the same key (a retry)
    spammer: bool  # sends extra claims with new keys (limits must hold)


@dataclass(frozen=True)
class SimMerchant:
    id: str
    name: str
    category: str
    promotion_pct: int  # the merchant's own 三八 promotion, percent off (0 for none)


def make_population(rnd: Round, size: int, seed: int) -> list[SimCitizen]:
    rng = random.Random(seed)
    kinds = list(_RESIDENCY_WEIGHTS)
    weights = list(_RESIDENCY_WEIGHTS.values())
    people = []
    for i in range(size):
        residency = rng.choices(kinds, weights)[0]
        citizen = Citizen(f"p{i:07d}", residency, in_city=rng.random() > 0.01)
        people.append(
            SimCitizen(
                citizen=citizen,
                wishes=_wishes(rnd, rng),
                arrival_ms=int(rng.expovariate(1 / 4000)),  # most within seconds of 10:00
                double_tap=rng.random() < 0.05,
                spammer=rng.random() < 0.01,
            )
        )
    return people


def _wishes(rnd: Round, rng: random.Random) -> tuple[str, ...]:
    """One or two categories a person wants, and in each the types by preference."""
    categories = sorted({t.category for t in rnd.types})
    appeal = [_CATEGORY_APPEAL.get(c, 0.3) for c in categories]
    wanted: list[str] = []
    for _ in range(rng.choice((1, 1, 2))):
        category = rng.choices(categories, appeal)[0]
        if category not in wanted:
            wanted.append(category)
    wishes: list[str] = []
    for category in wanted:
        types = [t for t in rnd.types if t.category == category]
        types.sort(key=lambda t: -t.discount_fen if rng.random() < 0.6 else t.threshold_fen)
        wishes.extend(t.id for t in types)
    return tuple(wishes)


def make_merchants(categories: list[str], per_category: int, seed: int) -> list[SimMerchant]:
    rng = random.Random(seed + 1)
    merchants = []
    for category in categories:
        for i in range(per_category):
            promotion = rng.choice((0, 0, 0, 5, 10, 20))
            merchants.append(
                SimMerchant(f"m-{category}-{i:04d}", f"{category} shop {i}", category, promotion)
            )
    return merchants
