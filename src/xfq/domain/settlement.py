"""What the city owes each merchant per day: settlement arithmetic, pure.

The rules, in the campaign's time zone:
- A redemption belongs to the day it was made. While that day is open (not yet paid), the
  redemption counts only if it still stands: one reversed before the day is closed is simply
  not owed.
- Closing a day freezes its statement (the lines are stored as they were). A redemption that was
  paid on a closed day and is reversed afterwards is clawed back by a reversal line on the first
  open day on or after the day of the reversal.
- A suspended merchant's statement is held: shown, owed, but not payable.

So, summed over every day, closed and open, what the city owes equals the discounts of the
redemptions that stand: each reversed one is either never counted or counted once and clawed
back once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import groupby


class LineKind(StrEnum):
    REDEMPTION = "redemption"  # a discount the city owes
    REVERSAL = "reversal"  # a discount paid on a closed day, taken back


@dataclass(frozen=True)
class SettledRedemption:
    """A redemption as settlement sees it."""

    redemption_id: str
    merchant_id: str
    type_id: str
    order_ref: str
    order_amount_fen: int  # what the voucher's threshold was compared with
    discount_fen: int
    redeemed_at: datetime
    reversed_at: datetime | None


@dataclass(frozen=True)
class StatementLine:
    day: date
    merchant_id: str
    kind: LineKind
    redemption_id: str
    type_id: str
    order_ref: str
    order_amount_fen: int
    discount_fen: int  # owed on a redemption line, 0 on a reversal line
    reversal_fen: int  # taken back on a reversal line, 0 on a redemption line
    at: datetime  # when it was redeemed, or reversed

    @property
    def owed_fen(self) -> int:
        return self.discount_fen - self.reversal_fen

    def sort_key(self) -> tuple[str, int, datetime, str]:
        return (self.merchant_id, self.kind is LineKind.REVERSAL, self.at, self.redemption_id)


@dataclass(frozen=True)
class Settled:
    """What earlier closings fixed: which days are closed, which redemptions they paid, and
    which reversals they already took back."""

    closed_days: frozenset[date] = frozenset()
    paid: frozenset[str] = frozenset()  # redemption ids with a redemption line on a closed day
    clawed_back: frozenset[str] = frozenset()  # ... with a reversal line on a closed day


@dataclass(frozen=True)
class Statement:
    """One merchant's lines of one day."""

    day: date
    merchant_id: str
    held: bool
    lines: tuple[StatementLine, ...]

    @property
    def discount_fen(self) -> int:
        return sum(line.discount_fen for line in self.lines)

    @property
    def reversal_fen(self) -> int:
        return sum(line.reversal_fen for line in self.lines)

    @property
    def owed_fen(self) -> int:
        return self.discount_fen - self.reversal_fen

    @property
    def payable_fen(self) -> int:
        return 0 if self.held else self.owed_fen

    @property
    def redemptions(self) -> int:
        return sum(line.kind is LineKind.REDEMPTION for line in self.lines)

    @property
    def reversals(self) -> int:
        return sum(line.kind is LineKind.REVERSAL for line in self.lines)


@dataclass(frozen=True)
class DaySettlement:
    day: date
    closed_at: datetime | None  # None while the day is open
    statements: tuple[Statement, ...]

    @property
    def owed_fen(self) -> int:
        return sum(s.owed_fen for s in self.statements)

    @property
    def payable_fen(self) -> int:
        return sum(s.payable_fen for s in self.statements)

    @property
    def held_fen(self) -> int:
        return sum(s.owed_fen for s in self.statements if s.held)

    def statement(self, merchant_id: str) -> Statement:
        for s in self.statements:
            if s.merchant_id == merchant_id:
                return s
        return Statement(self.day, merchant_id, held=False, lines=())


def local_day(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def day_ended(day: date, now: datetime, tz: tzinfo) -> bool:
    """Whether `day` is over in the campaign's zone: it can be closed only then."""
    return local_day(now, tz) > day


def carry_day(reversed_on: date, closed_days: frozenset[date]) -> date:
    """The first open day on or after `reversed_on`."""
    day = reversed_on
    while day in closed_days:
        day += timedelta(days=1)
    return day


def open_lines(
    redemptions: Iterable[SettledRedemption], settled: Settled, tz: tzinfo
) -> list[StatementLine]:
    """The lines of every open day, computed from the redemptions as they stand now."""
    lines = []
    for r in redemptions:
        day = local_day(r.redeemed_at, tz)
        if r.reversed_at is None and day not in settled.closed_days:
            lines.append(_line(r, day, LineKind.REDEMPTION, r.redeemed_at))
        elif (
            r.reversed_at is not None
            and r.redemption_id in settled.paid
            and r.redemption_id not in settled.clawed_back
        ):
            into = carry_day(local_day(r.reversed_at, tz), settled.closed_days)
            lines.append(_line(r, into, LineKind.REVERSAL, r.reversed_at))
    return lines


def _line(r: SettledRedemption, day: date, kind: LineKind, at: datetime) -> StatementLine:
    paid = kind is LineKind.REDEMPTION
    return StatementLine(
        day=day,
        merchant_id=r.merchant_id,
        kind=kind,
        redemption_id=r.redemption_id,
        type_id=r.type_id,
        order_ref=r.order_ref,
        order_amount_fen=r.order_amount_fen,
        discount_fen=r.discount_fen if paid else 0,
        reversal_fen=0 if paid else r.discount_fen,
        at=at,
    )


def settle_day(
    day: date,
    lines: Iterable[StatementLine],
    held_merchants: frozenset[str],
    closed_at: datetime | None = None,
) -> DaySettlement:
    """Group one day's lines into statements per merchant, in a stable order."""
    ordered = sorted((line for line in lines if line.day == day), key=StatementLine.sort_key)
    statements = tuple(
        Statement(day, merchant_id, merchant_id in held_merchants, tuple(group))
        for merchant_id, group in groupby(ordered, key=lambda line: line.merchant_id)
    )
    return DaySettlement(day, closed_at, statements)


def owed_by_day(lines: Iterable[StatementLine]) -> Mapping[date, int]:
    totals: dict[date, int] = {}
    for line in lines:
        totals[line.day] = totals.get(line.day, 0) + line.owed_fen
    return totals
