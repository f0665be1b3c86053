"""The round report: the ledger's figures, the sections other features own, the causal estimate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from xfq.domain.campaign import Campaign, Round
from xfq.domain.errors import ReportInputError, UnknownObject
from xfq.reports import causal, ledger_db
from xfq.reports.figures import LedgerFigures, read_figures
from xfq.reports.sections import READERS, Section, SectionReader, read_sections
from xfq.reports.spending_feed import attach_feed
from xfq.spec import parse_campaign


@dataclass(frozen=True)
class RoundReport:
    campaign: Campaign
    round: Round
    figures: LedgerFigures
    sections: tuple[Section, ...]
    causal: causal.CausalEstimate | None
    made_at: datetime


def stored_campaign(db: duckdb.DuckDBPyConnection, ledger: str) -> Campaign:
    row = db.execute("SELECT spec_toml FROM ledger.campaigns LIMIT 1").fetchone()
    if row is None:
        raise ReportInputError(f"ledger {ledger} holds no campaign")
    return parse_campaign(str(row[0]), f"{ledger} (stored spec)")


def build_report(
    db: duckdb.DuckDBPyConnection,
    ledger: str,
    round_id: str,
    made_at: datetime,
    spending: Path | None = None,
    weeks: int = 2,
    readers: tuple[SectionReader, ...] = READERS,
) -> RoundReport:
    campaign = stored_campaign(db, ledger)
    try:
        rnd = campaign.round(round_id)
    except UnknownObject:
        known = ", ".join(r.id for r in campaign.rounds)
        raise ReportInputError(
            f"round {round_id!r} is not in the ledger's campaign ({known})"
        ) from None
    estimate = None
    if spending is not None:
        attach_feed(db, spending)
        opening_day = rnd.opens_at.astimezone(campaign.tz).date()
        estimate = causal.estimate(db, rnd.id, opening_day, weeks)
    return RoundReport(
        campaign=campaign,
        round=rnd,
        figures=read_figures(db, campaign, rnd),
        sections=read_sections(db, rnd.id, readers),
        causal=estimate,
        made_at=made_at,
    )


def report_for(
    ledger: str,
    round_id: str,
    made_at: datetime,
    spending: Path | None = None,
    weeks: int = 2,
) -> RoundReport:
    """Open the ledger, read the round's report and close it again."""
    db = ledger_db.connect(ledger)
    try:
        return build_report(db, ledger, round_id, made_at, spending, weeks)
    finally:
        db.close()
