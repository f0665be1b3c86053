"""`xfq audit verify|digest` and `xfq fraud scan`: the ledger's integrity from the command line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape

from xfq.adapters.sql.audit import iter_entries
from xfq.adapters.sql.fraud import SqlFraudStore
from xfq.adapters.sql.ledger import stored_spec
from xfq.adapters.sql.schema import create_engine, database_url, is_postgres, migrate
from xfq.domain.audit import compare_digest, daily_digest, verify_chain
from xfq.services.fraud import run_scan
from xfq.spec import parse_campaign

EXIT_BROKEN, EXIT_USAGE = 1, 2
audit_app = typer.Typer(help="The audit trail: verify its chain, publish its daily digest.")
fraud_app = typer.Typer(help="Cash-out fraud signals over the ledger's redemptions.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

LedgerArg = Annotated[str, typer.Argument(help="SQLite ledger file, or a postgresql:// URL.")]


@audit_app.callback()
def _audit() -> None:
    return None


@fraud_app.callback()
def _fraud() -> None:
    return None


def _engine(ledger: str, command: str, writes: bool = False) -> sa.Engine:
    """The ledger's engine; migrated only for a command that writes (verifying changes nothing)."""
    url = database_url(ledger)
    if not is_postgres(url) and not Path(url.removeprefix("sqlite:///")).is_file():
        err.print(f"xfq {command}: no ledger file at {ledger}")
        raise typer.Exit(EXIT_USAGE)
    engine = create_engine(url)
    if writes:
        migrate(engine)
    elif not sa.inspect(engine).has_table("audit_log"):
        err.print(f"xfq {command}: {ledger} holds no audit trail (a ledger from before it)")
        raise typer.Exit(EXIT_USAGE)
    return engine


def _zone(engine: sa.Engine, name: str | None) -> tzinfo:
    if name is not None:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            err.print(f"xfq audit: --tz {name!r} is not a known time zone (e.g. Asia/Shanghai)")
            raise typer.Exit(EXIT_USAGE) from None
    spec = stored_spec(engine)
    return parse_campaign(spec, "the ledger's stored campaign").tz if spec else UTC


@audit_app.command()
def verify(
    ledger: LedgerArg,
    digest: Annotated[
        list[Path] | None,
        typer.Option(help="A digest published earlier (JSON); checked against the log."),
    ] = None,
) -> None:
    """Recompute every entry's hash; exit 1 naming the first broken sequence number."""
    engine = _engine(ledger, "audit verify")
    entries = list(iter_entries(engine))
    broken = verify_chain(entries)
    if broken is not None:
        out.print(f"[red]BROKEN[/] at {broken}")
        raise typer.Exit(EXIT_BROKEN)
    problems = []
    for path in digest or []:
        published = json.loads(path.read_text(encoding="utf-8"))
        day = date.fromisoformat(published["date"])
        recomputed = daily_digest(entries, day, ZoneInfo(published["timezone"]))
        problems += [f"{path} ({day}): {p}" for p in compare_digest(published, recomputed)]
    if problems:
        for p in problems:
            out.print(f"[red]DIGEST MISMATCH[/] {p}")
        raise typer.Exit(EXIT_BROKEN)
    head = entries[-1].hash if entries else "(empty log)"
    checked = f"; {len(digest)} published digest(s) match" if digest else ""
    out.print(f"[green]OK[/]: {len(entries)} entries, chain intact, head {head}{checked}")


@audit_app.command("digest")
def digest_command(
    ledger: LedgerArg,
    day: Annotated[str, typer.Argument(metavar="DATE", help="The day, YYYY-MM-DD.")],
    tz: Annotated[
        str | None, typer.Option(help="Time zone of the day [default: the campaign's, or UTC].")
    ] = None,
) -> None:
    """Print the day's digest as canonical JSON: the same log always gives the same bytes."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        err.print(f"xfq audit digest: DATE {day!r} is not a date like 2022-03-05")
        raise typer.Exit(EXIT_USAGE) from None
    engine = _engine(ledger, "audit digest")
    print(daily_digest(list(iter_entries(engine)), when, _zone(engine, tz)).as_json())


@fraud_app.command("scan")
def scan_command(
    ledger: LedgerArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per flag.")] = False,
) -> None:
    """Run the rules, store new flags for review (re-running adds none twice), print them."""
    engine = _engine(ledger, "fraud scan", writes=True)
    result = run_scan(SqlFraudStore(engine), datetime.now(UTC))
    for flag in result.flags:
        if as_json:
            record = {
                "id": flag.id,
                "rule": flag.rule.value,
                "merchant_id": flag.merchant_id,
                "person_id": flag.person_id,
                "redemption_ids": list(flag.redemption_ids),
                "evidence": flag.evidence,
                "explanation": flag.explanation,
            }
            print(json.dumps(record, ensure_ascii=False, sort_keys=True))
        else:
            out.print(f"[bold]{flag.rule.value}[/] {flag.id}: {escape(flag.explanation)}")
    merchants = len({f.merchant_id for f in result.flags})
    err.print(f"{len(result.flags)} flags on {merchants} merchants; {result.new} new")
