"""`xfq demo`: the reference round end to end on the embedded default, with its figures."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.figures import gather
from xfq.adapters.sql.fraud import SqlFraudStore, save_locations
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.schema import create_engine, sqlite_url
from xfq.domain.campaign import Campaign
from xfq.domain.errors import XfqError
from xfq.domain.fraud import Flag, GeoPoint
from xfq.domain.money import format_yuan
from xfq.forked import start_forked
from xfq.gc_policy import paused_gc
from xfq.services import operations
from xfq.services.expiry import expire
from xfq.services.fraud import run_scan
from xfq.services.reconcile import Check, TypeFigures, reconcile
from xfq.simulation.fraud import FRAUD_RATE, FraudTruth, plant_fraud
from xfq.simulation.grab import GrabResult, run_grab
from xfq.simulation.over_http import HttpGrabResult
from xfq.simulation.population import SimMerchant, make_merchants, make_population
from xfq.simulation.spending import TRUE_EXTRA_PER_YUAN, write_demo_feed
from xfq.simulation.week import WeekResult, run_week
from xfq.spec import load_campaign

OPERATOR = "demo-operator"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"


@dataclass(frozen=True)
class DemoOutcome:
    ledger_path: Path
    answers_path: Path
    grab: GrabResult
    week: WeekResult
    checks: list[Check]
    fraud: FraudTruth | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@paused_gc()  # see xfq.gc_policy: the collector cost a third of the CPU
def run_demo(
    spec_path: Path,
    workdir: Path,
    population: int,
    merchants_per_category: int,
    seed: int,
    round_id: str,
    console: Console,
    fraud_rate: float = FRAUD_RATE,
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
    ledger = _fresh_ledger(url, campaign, spec_path, clock.now())
    ids = RandomIds()
    merchants = make_merchants(
        sorted({t.category for t in rnd.types}), merchants_per_category, seed
    )
    enroll_all(ledger, merchants, clock.now())
    engine = EmbeddedClaimEngine(campaign, ledger, ids, workdir / "engine.lock")
    people = make_population(rnd, population, seed)
    with progress_bars(console) as progress:
        task = progress.add_task(f"grab {rnd.name} at {rnd.opens_at:%H:%M}", total=None)
        grab = run_grab(engine, clock, rnd.opens_at, people, lambda n: progress.advance(task, n))
        progress.update(task, total=progress.tasks[task].completed)

        def locate(kind: str, points: dict[str, GeoPoint]) -> None:
            save_locations(ledger.engine, kind, points)

        planted = plant_fraud(
            ledger, campaign, ids, grab.issued, merchants, seed, fraud_rate, locate
        )
        task = progress.add_task("validity week: shopping and refunds", total=len(grab.issued))
        week = run_week(
            ledger,
            campaign,
            clock,
            ids,
            planted.honest,
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
    person_ids = [p.citizen.person_id for p in people]
    feed_path, at = workdir / "spending.parquet", clock.now()
    # The fraud scan and the spending feed read the closed ledger beside reconciliation.
    scanned = start_forked(
        lambda: (
            scan_flags(url, at),
            write_demo_feed(url, campaign, rnd, person_ids, feed_path, seed),
        )
    )
    reading = create_engine(url)
    figures = gather(reading, with_ids=True, campaign=campaign)
    reading.dispose()
    checks = reconcile(campaign, figures, (v.id for v in grab.issued))
    types = [t for t in figures.types if t.round_id == rnd.id]
    print_summary(console, f"{campaign.name} {rnd.name}", types, grab, week)
    print_checks(console, checks)
    flags, feed = scanned()
    print_fraud(console, flags, planted.truth)
    shown = f"{ledger_path}[/] (SQLite)" if database_url is None else f"{_hidden(url)}[/]"
    console.print(f"Ledger: [bold]{shown}; issued answers: {answers_path}")
    print_feed_hint(console, ledger_path if database_url is None else _hidden(url), rnd.id, feed)
    return DemoOutcome(ledger_path, answers_path, grab, week, checks, planted.truth)


def _fresh_ledger(url: str, campaign: Campaign, spec_path: Path, at: datetime) -> SqlLedger:
    ledger = SqlLedger(url)
    if ledger.campaign_spec() is not None:
        ledger.close()
        raise XfqError("the demo needs an empty ledger: this database holds a campaign already")
    ledger.install_campaign(campaign, spec_path.read_text(encoding="utf-8"), at)
    return ledger


def scan_flags(ledger_url: str, at: datetime) -> list[Flag]:
    """The fraud scan over the demo's ledger, its flags stored for review."""
    reading = create_engine(ledger_url)
    try:
        return run_scan(SqlFraudStore(reading), at).flags
    finally:
        reading.dispose()


def print_fraud(console: Console, flags: list[Flag], truth: FraudTruth) -> None:
    """The fraud scan's flags against the fraud the demo planted."""
    flagged = {f.merchant_id for f in flags}
    found = len(flagged & set(truth.colluders))
    console.print(
        f"[bold]Fraud scan[/]: {len(flags)} flags on {len(flagged)} merchants; "
        f"{found} of {len(truth.colluders)} planted colluding merchants flagged, "
        f"{len(flagged - set(truth.colluders))} honest ones flagged (`xfq fraud scan` lists them)"
    )


def enroll_all(ledger: SqlLedger, merchants: list[SimMerchant], at: datetime) -> None:
    """Enroll and approve every merchant as an operator would: each change audited."""
    for status in ("pending", "enrolled"):
        futures = [
            operations.enroll_merchant(ledger, OPERATOR, m.id, m.name, m.category, at)
            if status == "pending"
            else operations.set_merchant_status(ledger, OPERATOR, m.id, status, at)
            for m in merchants
        ]
        for future in futures:
            future.result()


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


def print_feed_hint(console: Console, ledger: Path | str, round_id: str, feed: Path) -> None:
    console.print(
        f"Spending feed (synthetic; true effect {TRUE_EXTRA_PER_YUAN} yuan per yuan): {feed}\n"
        f"Report: xfq report {ledger} {round_id} --spending {feed} --html report.html"
    )
