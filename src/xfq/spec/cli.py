"""`xfq spec check FILE`: check a campaign file and show its figures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from xfq.domain.errors import SpecError
from xfq.domain.rollover import describe_policy
from xfq.spec.load import load_campaign
from xfq.spec.summary import (
    COLUMNS,
    CampaignSummary,
    RoundSummary,
    category_rows,
    summarize_campaign,
    summary_json,
    total_row,
    type_rows,
)

EXIT_INVALID = 2

spec_app = typer.Typer(help="Campaign files (TOML): check them before a campaign runs.")


@spec_app.callback()
def _spec() -> None:
    # A callback keeps `check` a subcommand even when this app is run on its own.
    return None


@spec_app.command()
def check(
    file: Annotated[Path, typer.Argument(help="The campaign file, e.g. campaign.toml.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as JSON instead of tables.")
    ] = False,
) -> None:
    """Check FILE and print each round's figures; exit 2 listing every problem if invalid."""
    try:
        campaign = load_campaign(file)
    except SpecError as err:
        _print_problems(file, err.problems)
        raise typer.Exit(EXIT_INVALID) from None
    summary = summarize_campaign(campaign)
    rollover = describe_policy(campaign)  # what the rollover policy would do, round by round
    if as_json:
        data = {**summary_json(summary), "rollover": rollover}
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _print_summary(summary)
        Console(highlight=False).print(Text("\n".join(rollover)))


def _print_problems(file: Path, problems: list[str]) -> None:
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    for problem in problems:
        console.print(Text(problem, style="red"))
    count = len(problems)
    console.print(f"{file}: {count} problem{'s' * (count != 1)}; the campaign was not loaded.")


def _print_summary(summary: CampaignSummary) -> None:
    console = Console(highlight=False)
    console.print(Text(f"{summary.name} ({summary.campaign_id}), {summary.city}", style="bold"))
    for rnd in summary.rounds:
        console.print()
        console.print(_round_header(rnd))
        console.print(_round_table(rnd))
    console.print(Text(f"OK: {len(summary.rounds)} round(s); every stated total matches."))


def _round_header(rnd: RoundSummary) -> Text:
    limits = rnd.limits
    per_category = "no limit" if limits.per_category is None else limits.per_category
    per_round = "no limit" if limits.per_round is None else limits.per_round
    stated = ", ".join(rnd.stated) + " (all match)" if rnd.stated else "none"
    return Text(
        f"Round {rnd.number} ({rnd.round_id}) {rnd.name}\n"
        f"  opens at         {rnd.opens_at:%Y-%m-%d %H:%M:%S} {rnd.timezone}"
        f" ({_utc_offset(rnd.opens_at)})\n"
        f"  claims close at  {rnd.claim_closes_at:%Y-%m-%d %H:%M:%S} (exclusive)\n"
        f"  last usable day  {rnd.last_usable_day:%Y-%m-%d}\n"
        f"  limits           per person: {limits.per_type} per type,"
        f" {per_category} per category, {per_round} per round\n"
        f"  stated totals    {stated}" + _issuance_lines(rnd)
    )


def _issuance_lines(rnd: RoundSummary) -> str:
    household = rnd.limits.per_household
    lines = "" if household is None else f"\n  per household    {household} per round"
    for t in rnd.types:
        if t.assisted or t.districts:
            shares = [f"{t.assisted:,} assisted"] if t.assisted else []
            shares += [f"{n:,} {district}" for district, n in t.districts]
            lines += f"\n  quota            {t.type_id}: " + ", ".join(shares)
    room = rnd.waiting_room
    if room is not None:
        lines += (
            f"\n  waiting room     opens {int(room.opens_before.total_seconds()) // 60} min before;"
            f" random order at the opening second, then first come; admits"
            f" {room.admit_per_second:,}/s; tokens live {int(room.token_ttl.total_seconds())} s"
        )
    lottery = rnd.lottery
    if lottery is None:
        return lines + f"\n  issuance         {rnd.issuance}"
    week = lottery.max_wins_per_week or "no cap"
    whole = lottery.max_wins_per_campaign or "no cap"
    return lines + (
        "\n  issuance         lottery (one voucher a win; draw re-runnable: xfq lottery verify)"
        f"\n  registration     {lottery.registration_opens_at:%Y-%m-%d %H:%M:%S} to"
        f" {lottery.registration_closes_at:%Y-%m-%d %H:%M:%S} (exclusive)"
        f"\n  draw at          {lottery.draw_at:%Y-%m-%d %H:%M:%S}"
        f"\n  wins per person  {week} a week, {whole} per campaign (across lottery rounds)"
    )


def _utc_offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _round_table(rnd: RoundSummary) -> Table:
    table = Table(title=f"Round {rnd.number} vouchers", title_justify="left")
    for position, column in enumerate(COLUMNS):
        table.add_column(column, justify="right" if position >= 3 else "left")
    for row in type_rows(rnd):
        table.add_row(*row)
    table.add_section()
    for row in category_rows(rnd):
        table.add_row(*row)
    table.add_section()
    table.add_row(*total_row(rnd), style="bold")
    return table
