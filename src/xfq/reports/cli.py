"""`xfq report DB ROUND`: the round report in the terminal, as one HTML file and as XLSX."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from xfq.domain.money import format_yuan
from xfq.reports.labels import Lang

if TYPE_CHECKING:  # the heavy imports (DuckDB, numpy) wait until a report is asked for
    from xfq.reports.figures import Tally
    from xfq.reports.round_report import RoundReport

console = Console()


def report_command(
    ledger: Annotated[
        str, typer.Argument(help="Ledger: a SQLite file, sqlite:///PATH or postgresql://URL.")
    ],
    round_id: Annotated[str, typer.Argument(metavar="ROUND", help="Round id, e.g. r6.")],
    html: Annotated[Path | None, typer.Option(help="Write the report as one HTML file.")] = None,
    xlsx: Annotated[Path | None, typer.Option(help="Write the report's tables as XLSX.")] = None,
    spending: Annotated[
        Path | None,
        typer.Option(help="Spending feed (CSV or Parquet) for the causal leverage estimate."),
    ] = None,
    weeks: Annotated[int, typer.Option(help="Weeks before and after the opening day.")] = 2,
    lang: Annotated[str, typer.Option(help="zh or en.")] = "zh",
) -> None:
    """Issued, claimed, redeemed, expired; the sell-out curve; leverage, gross and causal."""
    from xfq.reports.round_report import report_for

    language: Lang = "en" if lang == "en" else "zh"
    report = report_for(ledger, round_id, datetime.now(UTC), spending, weeks)
    print_report(report)
    if html is not None:
        from xfq.reports.html import render_page

        html.write_text(render_page(report, language), encoding="utf-8")
        console.print(f"HTML: {html}")
    if xlsx is not None:
        from xfq.reports.xlsx import write_xlsx

        write_xlsx(report, xlsx, language)
        console.print(f"XLSX: {xlsx}")


def print_report(report: RoundReport) -> None:
    f = report.figures
    table = Table(title=f"{report.campaign.name} {report.round.name} ({report.round.id})")
    for column in ("type", "stock", "claimed", "redeemed", "expired", "unused", "reversals"):
        table.add_column(column, justify="right")
    for column in ("rate", "discount ¥", "order value ¥", "leverage", "sold out after"):
        table.add_column(column, justify="right")
    for t in f.types:
        sold = f"{t.sold_out_after_s:.1f} s" if t.sold_out_after_s is not None else "-"
        table.add_row(t.type_id, *_cells(t.tally), sold)
    table.add_row("total", *_cells(f.total), "", style="bold")
    console.print(table)
    console.print(f"{f.people:,} people hold a voucher; budget ¥{_yuan(f.budget_fen)}")
    c = report.causal
    if c is not None:
        i = c.extra_per_yuan
        console.print(
            f"Causal leverage (DiD, {c.winners:,} winners vs {c.others:,} who failed): "
            f"[bold]{i.estimate:.2f}[/] extra yuan per yuan of subsidy "
            f"(95% {i.low:.2f}–{i.high:.2f}); gross {_ratio(f.total.leverage)}"
        )
    for s in report.sections:
        console.print(f"{s.key}: {'available' if s.available else s.note}")


def _cells(t: Tally) -> list[str]:
    rate = f"{t.redemption_rate:.1%}" if t.redemption_rate is not None else "-"
    return [
        f"{t.stock:,}",
        f"{t.claimed:,}",
        f"{t.redeemed:,}",
        f"{t.expired:,}",
        f"{t.unused:,}",
        f"{t.reversals:,}",
        rate,
        _yuan(t.discount_fen),
        _yuan(t.order_value_fen),
        _ratio(t.leverage),
    ]


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _yuan(fen: int) -> str:
    whole, _, cents = format_yuan(fen).partition(".")
    return f"{int(whole):,}.{cents}"
