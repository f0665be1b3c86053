"""`xfq expire`, `xfq rollover` and `xfq settle`: money after the grab, on a ledger file."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.adapters.sql.schema import database_url, is_postgres
from xfq.domain.campaign import Campaign
from xfq.domain.money import format_yuan
from xfq.domain.settlement import DaySettlement
from xfq.spec import parse_campaign
from xfq.spec.convert import as_aware

if TYPE_CHECKING:
    from xfq.domain.rollover import RolloverMove
    from xfq.services.rollover import Unpersisted

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

LedgerArg = Annotated[str, typer.Argument(help="SQLite ledger file, or a postgresql:// URL.")]
AtOption = Annotated[
    datetime | None,
    typer.Option(
        "--at",
        help="Act as of this time (ISO; without an offset it is read in the campaign's zone) "
        "[default: now].",
    ),
]


@contextlib.contextmanager
def _opened(path: str, command: str) -> Iterator[tuple[SqlLedger, Campaign]]:
    url = database_url(path)
    if not is_postgres(url) and not Path(url.removeprefix("sqlite:///")).is_file():
        errors.print(f"xfq {command}: no ledger file at {path}")
        raise typer.Exit(2)
    ledger = SqlLedger(url)
    try:
        spec_text = ledger.campaign_spec()
        if spec_text is None:
            errors.print(f"xfq {command}: {path} holds no campaign")
            raise typer.Exit(2)
        campaign = parse_campaign(spec_text, f"{path} (stored spec)")
        for round_id, (opens_at, closes_at) in ledger.windows().items():
            campaign = campaign.with_claim_window(round_id, opens_at, closes_at)
        yield ledger, campaign
    finally:
        ledger.close()


def _when(at: datetime | None, campaign: Campaign) -> datetime:
    return datetime.now(UTC) if at is None else as_aware(at, campaign.tz)


def expire_command(ledger: LedgerArg, at: AtOption = None) -> None:
    """Expire every voucher whose validity ended by now (or --at); re-running expires nothing
    more."""
    from xfq.services.expiry import expire

    with _opened(ledger, "expire") as (sql, campaign):
        now = _when(at, campaign)
        count = expire(sql, now).result()
        local = now.astimezone(campaign.tz).isoformat(timespec="seconds")
        console.print(
            f"expired {count:,} voucher(s) whose validity ended by {local}"
            f" ({campaign.timezone_name})"
        )


def _refuse_while_served(ledger: str) -> None:
    """A running server's claim engine would not see the new stock: let it roll over instead."""
    if is_postgres(database_url(ledger)):  # its engine's lock is the server's, not a file
        errors.print(
            "xfq rollover: on a PostgreSQL ledger a server rolls over by itself when due, or "
            "use POST /v1/ops/rounds/ROUND/rollover"
        )
        raise typer.Exit(2)
    lock = Path(f"{database_url(ledger).removeprefix('sqlite:///')}.engine.lock")  # as bootstrap
    if not lock.exists():
        return
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            errors.print(
                f"xfq rollover: a server is running on {ledger} ({lock}); it rolls over by "
                "itself when due, or use POST /v1/ops/rounds/ROUND/rollover"
            )
            raise typer.Exit(2) from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def _unpersisted(redis_url: str, campaign: Campaign) -> Unpersisted:
    """The claims of a ledger served with Redis that its persister has not moved yet."""
    from xfq.adapters.ids import RandomIds
    from xfq.adapters.redis.connect import storage_errors
    from xfq.adapters.redis.engine import RedisClaimEngine

    def ask(in_ledger: Mapping[str, int], moves: Sequence[RolloverMove]) -> Mapping[str, int]:
        with storage_errors(f"the Redis at {redis_url} was not asked for unpersisted claims"):
            engine = RedisClaimEngine(campaign, redis_url, RandomIds())
        try:
            return engine.unpersisted(in_ledger, moves)
        finally:
            engine.close()

    return ask


def rollover_command(
    ledger: LedgerArg,
    round_id: Annotated[str, typer.Argument(help="The finished round, e.g. r5.")],
    at: AtOption = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis",
            envvar="XFQ_REDIS_URL",
            help="The Redis that decided this ledger's claims: refused while some are not in "
            "the ledger yet.",
        ),
    ] = None,
) -> None:
    """Roll a finished round's unclaimed and expired value into the later round its policy
    names (once; a re-run shows what was done). Refused while `xfq serve` runs on this ledger:
    the server rolls over by itself when due."""
    from xfq.services.rollover import effective_budgets, roll_over

    _refuse_while_served(ledger)
    with _opened(ledger, "rollover") as (sql, campaign):
        store = SqlRolloverStore(sql.engine)
        # With Redis, a claim its persister has not moved would count as unclaimed.
        asked = None if redis_url is None else _unpersisted(redis_url, campaign)
        result = roll_over(store, sql, campaign, round_id, _when(at, campaign), asked)
        table = Table(
            title=f"Rollover {result.from_round} -> {result.into_round}"
            + ("" if result.newly_done else " (done before)")
        )
        for column in ("from type", "unclaimed", "expired", "value ¥", "into type", "added"):
            table.add_column(column, justify="right")
        table.add_column("remainder ¥", justify="right")
        for m in result.moves:
            table.add_row(
                m.from_type_id,
                f"{m.unclaimed:,}",
                f"{m.expired:,}",
                format_yuan(m.value_fen),
                m.into_type_id or "-",
                f"{m.added_count:,}",
                format_yuan(m.remainder_fen),
            )
        console.print(table)
        budgets = effective_budgets(campaign, store)
        into = campaign.round(result.into_round)
        console.print(
            f"round {into.id}: budget {format_yuan(into.budget_fen)} yuan, "
            f"effective budget {format_yuan(budgets[into.id])} yuan with "
            f"{format_yuan(result.added_fen)} rolled in; "
            f"{format_yuan(result.remainder_fen)} not re-issued (remainders)"
        )


def settle_command(
    ledger: LedgerArg,
    day: Annotated[str, typer.Argument(help="The day to settle, YYYY-MM-DD (campaign's zone).")],
    out: Annotated[Path, typer.Option(help="Folder for the CSV and XLSX files.")] = Path("."),
    close: Annotated[
        bool, typer.Option("--close", help="Close the day as paid: its statement is frozen.")
    ] = False,
    by: Annotated[str, typer.Option(help="Who closes the day (recorded).")] = "operator-cli",
    at: AtOption = None,
) -> None:
    """Write a day's settlement per merchant for finance (CSV and XLSX, identical on re-runs)."""
    from xfq.adapters.settlement_files import write_day_files
    from xfq.adapters.sql.settlement import SqlSettlementStore
    from xfq.services.settlement import close_day, day_settlement

    try:
        settled_day = date.fromisoformat(day)
    except ValueError:
        errors.print(f"xfq settle: DAY must be a date like 2022-03-07, not {day!r}")
        raise typer.Exit(2) from None
    with _opened(ledger, "settle") as (sql, campaign):
        store = SqlSettlementStore(sql.engine, campaign.tz)
        if close:
            closing = close_day(store, campaign, settled_day, _when(at, campaign), by)
            settlement = closing.settlement
            if not closing.newly_closed:
                console.print(f"{day} was closed before; its frozen statement is shown")
        else:
            settlement = day_settlement(store, campaign, settled_day)
        names = {m.id: m.name for m in sql.merchants()}
        csv_path, xlsx_path = write_day_files(settlement, names, campaign.tz, out)
    _print_settlement(settlement)
    console.print(f"wrote {csv_path} and {xlsx_path}")


def _print_settlement(s: DaySettlement) -> None:
    state = "open" if s.closed_at is None else f"closed at {s.closed_at.isoformat()}"
    held = [x for x in s.statements if x.held]
    console.print(
        f"settlement {s.day.isoformat()} ({state}): {len(s.statements):,} merchant(s), "
        f"{sum(x.redemptions for x in s.statements):,} redemption line(s), "
        f"{sum(x.reversals for x in s.statements):,} reversal line(s)"
    )
    console.print(
        f"  owed {format_yuan(s.owed_fen)} yuan; payable {format_yuan(s.payable_fen)}; "
        f"held {format_yuan(s.held_fen)} ({len(held)} suspended merchant(s))"
    )
