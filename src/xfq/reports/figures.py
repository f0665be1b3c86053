"""The round report's figures: DuckDB aggregates over the attached ledger, as frozen values.

Days are the campaign's local days: (UTC microseconds + the zone's offset at the opening) // one
day, exact for zones without a DST change during the round (Asia/Shanghai has none). Order value
is what an order cost before the voucher (list price minus the merchant's own promotion), so
gross leverage = order value ÷ discount of the posted (not reversed) redemptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from xfq.domain.campaign import Campaign, Round

US_PER_DAY = 86_400_000_000
CURVE_BUCKET_US = 100_000  # the sell-out curve in tenths of a second ...
CURVE_SPAN_US = 3_600_000_000  # ... over the first hour after the opening
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)

# Reading a row through the SQLite (or PostgreSQL) scanner costs far more than aggregating it
# in DuckDB, so the round's vouchers are read once into a narrow temporary table and every
# question about them is asked of that copy.
_COPY_VOUCHERS = """
CREATE OR REPLACE TEMP TABLE round_vouchers AS
SELECT id, type_id, category, person_id, state, issued_at_us, valid_until_us
FROM ledger.vouchers WHERE round_id = $round
"""
_BY_TYPE_STATE = (
    "SELECT type_id, state, count(*), max(issued_at_us) FROM round_vouchers GROUP BY ALL"
)
_PEOPLE = "SELECT count(DISTINCT person_id) FROM round_vouchers"
_CLAIMED_BY_DAY = """
SELECT category, (issued_at_us + $offset) // $day AS d, count(*) FROM round_vouchers GROUP BY ALL
"""
# A voucher expires at the end of its validity: it counts on the last day it was valid.
_EXPIRED_BY_DAY = """
SELECT category, (valid_until_us - 1 + $offset) // $day AS d, count(*)
FROM round_vouchers WHERE state = 'expired' GROUP BY ALL
"""
_REDEMPTIONS = """
SELECT v.type_id, v.category, (r.redeemed_at_us + $offset) // $day AS d, r.state, count(*),
       sum(r.discount_fen), sum(r.list_price_fen - r.merchant_promotion_fen)
FROM ledger.redemptions r JOIN round_vouchers v ON v.id = r.voucher_id GROUP BY ALL
"""
_CURVE = """
SELECT type_id, greatest(issued_at_us - $opens, 0) // $bucket AS b, count(*)
FROM round_vouchers WHERE issued_at_us < $opens + $span GROUP BY ALL ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Tally:
    """Counts and money of one slice (a type, a category, a day, or the whole round)."""

    stock: int = 0  # vouchers the spec offers (issued into the pool)
    claimed: int = 0  # taken into a wallet
    redeemed: int = 0  # used, not reversed
    expired: int = 0
    reversals: int = 0  # redemptions undone by a refund
    discount_fen: int = 0  # of posted redemptions: what the city pays
    order_value_fen: int = 0  # of posted redemptions: orders before the voucher

    @property
    def unused(self) -> int:
        return self.claimed - self.redeemed - self.expired

    @property
    def redemption_rate(self) -> float | None:
        return self.redeemed / self.claimed if self.claimed else None

    @property
    def leverage(self) -> float | None:
        return self.order_value_fen / self.discount_fen if self.discount_fen else None

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f) + getattr(other, f) for f in Tally.__dataclass_fields__))


@dataclass(frozen=True)
class TypeLine:
    type_id: str
    category: str
    threshold_fen: int
    discount_fen: int
    tally: Tally
    sold_out_at: datetime | None  # when the last voucher of a sold-out type was claimed
    sold_out_after_s: float | None  # ... seconds after the opening


@dataclass(frozen=True)
class CategoryLine:
    category: str
    tally: Tally


@dataclass(frozen=True)
class DayLine:
    day: date
    category: str
    tally: Tally  # stock is 0: stock belongs to no day


@dataclass(frozen=True)
class CurvePoint:
    type_id: str
    after_s: float  # end of the bucket, seconds after the opening
    claimed: int  # cumulative


@dataclass(frozen=True)
class LedgerFigures:
    """What the ledger says about one round."""

    types: tuple[TypeLine, ...]
    categories: tuple[CategoryLine, ...]
    days: tuple[DayLine, ...]
    curve: tuple[CurvePoint, ...]
    total: Tally
    people: int  # distinct people holding a voucher of the round
    budget_fen: int  # stock × discount over the round's types

    def day_totals(self) -> list[tuple[date, Tally]]:
        totals: dict[date, Tally] = {}
        for line in self.days:
            totals[line.day] = totals.get(line.day, Tally()) + line.tally
        return sorted(totals.items())


def local_offset_us(campaign: Campaign, rnd: Round) -> int:
    offset = rnd.opens_at.astimezone(campaign.tz).utcoffset() or timedelta(0)
    return offset // timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def read_figures(db: duckdb.DuckDBPyConnection, campaign: Campaign, rnd: Round) -> LedgerFigures:
    """Every figure of the round from the attached ledger."""
    by_day: dict[str, int] = {"offset": local_offset_us(campaign, rnd), "day": US_PER_DAY}
    db.execute(_COPY_VOUCHERS, {"round": rnd.id})
    try:
        states, last_claim = _type_states(db)
        redemptions = db.execute(_REDEMPTIONS, by_day).fetchall()
        days = _days(db, by_day, redemptions)
        curve = _curve(db, rnd)
        people = db.execute(_PEOPLE).fetchone()
    finally:
        db.execute("DROP TABLE IF EXISTS round_vouchers")
    money = _redemption_money(redemptions)
    types = tuple(_type_line(rnd, vt.id, states, money, last_claim) for vt in rnd.types)
    categories = tuple(
        CategoryLine(c, _sum(t.tally for t in types if t.category == c))
        for c in dict.fromkeys(vt.category for vt in rnd.types)
    )
    return LedgerFigures(
        types=types,
        categories=categories,
        days=days,
        curve=curve,
        total=_sum(t.tally for t in types),
        people=int(people[0]) if people else 0,
        budget_fen=sum(vt.count * vt.discount_fen for vt in rnd.types),
    )


def _sum(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total = total + t
    return total


_Key = tuple[str, str]  # (type id, state)


def _type_states(db: duckdb.DuckDBPyConnection) -> tuple[dict[_Key, int], dict[str, int]]:
    states: dict[_Key, int] = {}
    last_claim: dict[str, int] = {}
    for type_id, state, n, last_us in db.execute(_BY_TYPE_STATE).fetchall():
        states[(type_id, state)] = int(n)
        last_claim[type_id] = max(last_claim.get(type_id, 0), int(last_us))
    return states, last_claim


def _redemption_money(redemptions: list[tuple[Any, ...]]) -> dict[_Key, tuple[int, int, int]]:
    """(type, state) → (redemptions, discount fen, order value fen)."""
    money: dict[_Key, tuple[int, int, int]] = {}
    for type_id, _c, _d, state, n, discount, value in redemptions:
        old = money.get((type_id, state), (0, 0, 0))
        money[(type_id, state)] = (old[0] + n, old[1] + int(discount), old[2] + int(value))
    return money


def _type_line(
    rnd: Round,
    type_id: str,
    states: dict[_Key, int],
    money: dict[_Key, tuple[int, int, int]],
    last_claim: dict[str, int],
) -> TypeLine:
    vt = next(t for t in rnd.types if t.id == type_id)
    claimed = sum(n for (t, _s), n in states.items() if t == type_id)
    _n, discount_fen, value_fen = money.get((type_id, "posted"), (0, 0, 0))
    sold_out = _EPOCH + timedelta(microseconds=last_claim[type_id]) if claimed >= vt.count else None
    return TypeLine(
        type_id=type_id,
        category=vt.category,
        threshold_fen=vt.threshold_fen,
        discount_fen=vt.discount_fen,
        tally=Tally(
            stock=vt.count,
            claimed=claimed,
            redeemed=states.get((type_id, "redeemed"), 0),
            expired=states.get((type_id, "expired"), 0),
            reversals=money.get((type_id, "reversed"), (0, 0, 0))[0],
            discount_fen=discount_fen,
            order_value_fen=value_fen,
        ),
        sold_out_at=sold_out,
        sold_out_after_s=(sold_out - rnd.opens_at).total_seconds() if sold_out else None,
    )


def _days(
    db: duckdb.DuckDBPyConnection, by_day: dict[str, int], redemptions: list[tuple[Any, ...]]
) -> tuple[DayLine, ...]:
    cells: dict[tuple[int, str], dict[str, int]] = {}

    def add(day: int, category: str, **figures: int) -> None:
        cell = cells.setdefault((day, category), {})
        for name, n in figures.items():
            cell[name] = cell.get(name, 0) + n

    for category, day, n in db.execute(_CLAIMED_BY_DAY, by_day).fetchall():
        add(day, category, claimed=n)
    for category, day, n in db.execute(_EXPIRED_BY_DAY, by_day).fetchall():
        add(day, category, expired=n)
    for _t, category, day, state, n, discount, value in redemptions:
        if state == "posted":
            add(day, category, redeemed=n, discount_fen=int(discount), order_value_fen=int(value))
        else:
            add(day, category, reversals=n)
    return tuple(
        DayLine(_EPOCH_DAY + timedelta(days=day), category, Tally(**cell))
        for (day, category), cell in sorted(cells.items())
    )


def _curve(db: duckdb.DuckDBPyConnection, rnd: Round) -> tuple[CurvePoint, ...]:
    params = {
        "opens": epoch_us(rnd.opens_at),
        "bucket": CURVE_BUCKET_US,
        "span": CURVE_SPAN_US,
    }
    points: list[CurvePoint] = []
    running: dict[str, int] = {}
    for type_id, bucket, n in db.execute(_CURVE, params).fetchall():
        running[type_id] = running.get(type_id, 0) + int(n)
        after_s = (int(bucket) + 1) * CURVE_BUCKET_US / 1_000_000
        points.append(CurvePoint(type_id, after_s, running[type_id]))
    return tuple(points)
