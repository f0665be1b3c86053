"""`xfq demo`: the reference round end to end on the embedded default, with its figures."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.figures import gather
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.schema import create_engine, sqlite_url
from xfq.domain.errors import XfqError
from xfq.domain.money import format_yuan
from xfq.services.expiry import expire
from xfq.services.reconcile import Check, TypeFigures, reconcile
from xfq.simulation.grab import GrabResult, run_grab
from xfq.simulation.over_http import HttpGrabResult
from xfq.simulation.population import make_merchants, make_population
from xfq.simulation.week import WeekResult, run_week
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"


@dataclass(frozen=True)
class DemoOutcome:
    ledger_path: Path
    answers_path: Path
    grab: GrabResult
    week: WeekResult
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def run_demo(
    spec_path: Path,
    workdir: Path,
    population: int,
    merchants_per_category: int,
    seed: int,
    round_id: str,
    console: Console,
    database_url: str | None = None,
) -> DemoOutcome:
    """The demo in one process; on a new SQLite file in `workdir`, or on an empty database
    at `database_url` (PostgreSQL)."""
    campaign = load_campaign(spec_path)
    rnd = campaign.round(round_id)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ledger_path = workdir / "ledger.db"
    url = sqlite_url(ledger_path) if database_url is None else database_url
    clock = SimulatedClock(rnd.opens_at - timedelta(days=1))
    ledger = SqlLedger(url)
    if ledger.campaign_spec() is not None:
        ledger.close()
        raise XfqError("the demo needs an empty ledger: this database holds a campaign already")
    ledger.install_campaign(campaign, spec_path.read_text(encoding="utf-8"), clock.now())
    ids = RandomIds()
    merchants = make_merchants(
        sorted({t.category for t in rnd.types}), merchants_per_category, seed
    )
    for m in merchants:
        ledger.enroll_merchant(m.id, m.name, m.category, clock.now())
    engine = EmbeddedClaimEngine(campaign, ledger, ids, workdir / "engine.lock")
    people = make_population(rnd, population, seed)
    with progress_bars(console) as progress:
        task = progress.add_task(f"grab {rnd.name} at {rnd.opens_at:%H:%M}", total=None)
        grab = run_grab(engine, clock, rnd.opens_at, people, lambda n: progress.advance(task, n))
        progress.update(task, total=progress.tasks[task].completed)
        task = progress.add_task("validity week: shopping and refunds", total=len(grab.issued))
        week = run_week(
            ledger,
            campaign,
            clock,
            ids,
            grab.issued,
            merchants,
            seed,
            lambda n: progress.advance(task, n),
        )
        progress.update(task, completed=len(grab.issued))
    last_day = max(v.valid_until for v in grab.issued)
    clock.set(last_day)
    expire(ledger, clock.now()).result()
    engine.close()
    ledger.close()
    answers_path = workdir / "issued-answers.txt"
    answers_path.write_text("".join(f"{v.id}\n" for v in grab.issued), encoding="utf-8")
    reading = create_engine(url)
    figures = gather(reading, with_ids=True)
    reading.dispose()
    checks = reconcile(campaign, figures, (v.id for v in grab.issued))
    types = [t for t in figures.types if t.round_id == rnd.id]
    print_summary(console, f"{campaign.name} {rnd.name}", types, grab, week)
    print_checks(console, checks)
    shown = f"{ledger_path}[/] (SQLite)" if database_url is None else f"{_hidden(url)}[/]"
    console.print(f"Ledger: [bold]{shown}; issued answers: {answers_path}")
    return DemoOutcome(ledger_path, answers_path, grab, week, checks)


def _hidden(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def progress_bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def print_summary(
    console: Console,
    title: str,
    types: list[TypeFigures],
    grab: GrabResult | HttpGrabResult,
    week: WeekResult,
) -> None:
    answers = ", ".join(f"{code} {n:,}" for code, n in grab.answers.most_common())
    console.print(f"[bold]The grab[/]: {grab.requests:,} claim requests; answers: {answers}")
    table = Table(title=title)
    for column in ("type", "count", "issued", "redeemed", "reversed", "expired", "left"):
        table.add_column(column, justify="right")
    for column in ("discount paid ¥", "order value ¥", "leverage", "sold out at"):
        table.add_column(column, justify="right")
    for t in types:
        table.add_row(*_row(t, grab))
    table.add_row(*_row(_total(types), grab), style="bold")
    console.print(table)
    console.print(
        f"Week: redemption answers {dict(week.redeem_answers)}; "
        f"refunds {dict(week.refund_outcomes)}; "
        f"{week.topped_up:,} customers topped up to reach a threshold; "
        f"{week.with_promotion:,} orders stacked with a merchant's own promotion"
    )


def _row(t: TypeFigures, grab: GrabResult | HttpGrabResult) -> list[str]:
    leverage = f"{t.order_value_fen / t.discount_fen:.2f}" if t.discount_fen else "-"
    sold_out = grab.sold_out_at.get(t.type_id)
    return [
        t.type_id,
        f"{t.count:,}",
        f"{t.issued:,}",
        f"{t.redeemed:,}",
        f"{t.reversed_redemptions:,}",
        f"{t.expired:,}",
        f"{t.available:,}",
        format_yuan(t.discount_fen),
        format_yuan(t.order_value_fen),
        leverage,
        f"{sold_out:%H:%M:%S.%f}"[:-3] if sold_out else "-",
    ]


def _total(types: list[TypeFigures]) -> TypeFigures:
    def add(name: str) -> int:
        return sum(int(getattr(t, name)) for t in types)

    return TypeFigures(
        "total",
        "",
        add("count"),
        add("issued"),
        add("available"),
        add("redeemed"),
        add("expired"),
        add("posted_redemptions"),
        add("discount_fen"),
        add("order_value_fen"),
        add("reversed_redemptions"),
    )


def print_checks(console: Console, checks: list[Check]) -> None:
    table = Table(title="Invariants (design.md)")
    table.add_column("#")
    table.add_column("invariant")
    table.add_column("holds")
    table.add_column("figures")
    for c in checks:
        mark = "[green]yes[/]" if c.ok else "[red]NO[/]"
        table.add_row(str(c.number), c.name, mark, c.detail)
    console.print(table)
