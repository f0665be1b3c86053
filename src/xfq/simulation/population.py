"""A synthetic city: citizens with wishes and arrival times, and enrolled merchants."""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

from xfq.domain.campaign import Round, VoucherType
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
    residencies = rng.choices(kinds, list(_RESIDENCY_WEIGHTS.values()), k=size)
    wishes = _Wishes(rnd)
    return [
        SimCitizen(
            citizen=Citizen(f"p{i:07d}", residencies[i], in_city=rng.random() > 0.01),
            wishes=wishes.draw(rng),
            arrival_ms=int(rng.expovariate(1 / 4000)),  # most within seconds of 10:00
            double_tap=rng.random() < 0.05,
            spammer=rng.random() < 0.01,
        )
        for i in range(size)
    ]


def _ids(types: list[VoucherType]) -> tuple[str, ...]:
    return tuple(t.id for t in types)


class _Wishes:
    """One or two categories a person wants, and in each the types by preference."""

    def __init__(self, rnd: Round) -> None:
        self.categories = sorted({t.category for t in rnd.types})
        # Cumulative weights once: `choices` would add them up again on every draw.
        self.appeal = list(accumulate(_CATEGORY_APPEAL.get(c, 0.3) for c in self.categories))
        types = {c: [t for t in rnd.types if t.category == c] for c in self.categories}
        # Most people go for the biggest discount first; some for the easiest threshold.
        self.bold = {
            c: tuple(t.id for t in sorted(ts, key=lambda t: -t.discount_fen))
            for c, ts in types.items()
        }
        self.modest = {
            c: tuple(t.id for t in sorted(ts, key=lambda t: t.threshold_fen))
            for c, ts in types.items()
        }

    def draw(self, rng: random.Random) -> tuple[str, ...]:
        wanted = rng.choices(self.categories, cum_weights=self.appeal, k=rng.choice((1, 1, 2)))
        if len(wanted) == 2 and wanted[0] == wanted[1]:
            wanted.pop()
        wishes: tuple[str, ...] = ()
        for category in wanted:
            wishes += (self.bold if rng.random() < 0.6 else self.modest)[category]
        return wishes


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
