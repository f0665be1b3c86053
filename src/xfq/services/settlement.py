"""Settling with merchants: a day's statements, closing a day once paid, the grand total."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from xfq.domain.campaign import Campaign
from xfq.domain.errors import XfqError
from xfq.domain.settlement import DaySettlement, day_ended, open_lines, settle_day
from xfq.ports import SettlementStore


class DayNotOver(XfqError):
    """A day can be closed only once it has ended in the campaign's time zone."""

    code = "day_not_over"


@dataclass(frozen=True)
class Closing:
    settlement: DaySettlement
    newly_closed: bool  # False: the day was closed before, its frozen statement is returned


def day_settlement(store: SettlementStore, campaign: Campaign, day: date) -> DaySettlement:
    """A closed day's frozen statement, or an open day's as the ledger stands now."""
    closed = store.closed_day(day)
    if closed is not None:
        return closed
    lines = open_lines(store.redemptions(), store.settled(), campaign.tz)
    return settle_day(day, lines, store.held_merchants())


def close_day(
    store: SettlementStore, campaign: Campaign, day: date, now: datetime, closed_by: str
) -> Closing:
    """Freeze `day`'s statement as paid; closing a closed day again changes nothing."""
    closed = store.closed_day(day)
    if closed is not None:
        return Closing(closed, newly_closed=False)
    if not day_ended(day, now, campaign.tz):
        raise DayNotOver(
            f"{day.isoformat()} has not ended yet in {campaign.timezone_name}; "
            "a day can be closed once it is over"
        )
    settlement = replace(day_settlement(store, campaign, day), closed_at=now)
    if not store.record_closing(settlement, closed_by):
        return Closing(_closed(store, day), newly_closed=False)
    # The store appended the "settlement.closed" audit entry in the same transaction.
    return Closing(settlement, newly_closed=True)


def _closed(store: SettlementStore, day: date) -> DaySettlement:
    closed = store.closed_day(day)
    assert closed is not None
    return closed


def settlement_total_fen(store: SettlementStore, campaign: Campaign) -> int:
    """What the city owes over every day, closed and open: equals the standing discounts."""
    closed = sum(line.owed_fen for line in store.closed_lines())
    return closed + sum(
        line.owed_fen for line in open_lines(store.redemptions(), store.settled(), campaign.tz)
    )
