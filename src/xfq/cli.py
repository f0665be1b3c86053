"""The `xfq` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from xfq.domain.errors import SpecError, XfqError
from xfq.lottery_cli import lottery_app
from xfq.money_cli import expire_command, rollover_command, settle_command
from xfq.spec import parse_campaign
from xfq.spec.cli import spec_app

app = typer.Typer(
    help="xfq: consumption-voucher (消费券) campaigns end to end.", no_args_is_help=True
)
app.add_typer(spec_app, name="spec")
app.add_typer(lottery_app, name="lottery")
app.command("expire")(expire_command)
app.command("rollover")(rollover_command)
app.command("settle")(settle_command)
console = Console()
errors = Console(stderr=True)


@app.command()
def demo(
    population: Annotated[
        int | None,
        typer.Option(
            help="Citizens who try to grab [default: 300,000 with --direct, else 20,000]."
        ),
    ] = None,
    merchants: Annotated[int, typer.Option(help="Enrolled merchants per category.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic city.")] = 2022,
    workdir: Annotated[Path, typer.Option(help="Where the ledger is written.")] = Path("var/demo"),
    spec: Annotated[Path | None, typer.Option(help="Campaign file.")] = None,
    round_id: Annotated[str, typer.Option("--round", help="Round to run.")] = "r6",
    direct: Annotated[
        bool, typer.Option("--direct", help="Call the services in process instead of over HTTP.")
    ] = False,
    exit_when_done: Annotated[
        bool, typer.Option("--exit", help="Stop the server when done instead of serving on.")
    ] = False,
) -> None:
    """Run the reference round: the grab at 10:00, the week of shopping, expiry, reconciliation.

    By default a server is started on a free loopback port and driven over HTTP; it keeps serving
    (dashboard URL printed) until Ctrl-C unless --exit.
    """
    from xfq.demo import EXAMPLE, run_demo
    from xfq.demo_http import run_http_demo

    spec_path = spec or EXAMPLE
    if direct:
        people = population or 300_000
        ok = run_demo(spec_path, workdir, people, merchants, seed, round_id, console).ok
    else:
        # Over HTTP one server process answers ~1,700 claims/s here: 20,000 people take ~1.5 min.
        people = population or 20_000
        ok = run_http_demo(
            spec_path, workdir, people, merchants, seed, round_id, not exit_when_done, console
        ).ok
    if not ok:
        raise typer.Exit(1)


@app.command("reconcile")
def reconcile_command(
    ledger: Annotated[Path, typer.Argument(help="SQLite ledger file.")],
    answers: Annotated[
        Path | None, typer.Option(help="Voucher ids that clients were answered `issued`.")
    ] = None,
) -> None:
    """Check every invariant of the design on a ledger; exit 1 if one fails."""
    from xfq.adapters.sql.figures import gather
    from xfq.adapters.sql.schema import create_engine, sqlite_url
    from xfq.demo import print_checks
    from xfq.services.reconcile import reconcile

    if not ledger.is_file():
        errors.print(f"xfq reconcile: no ledger file at {ledger}")
        raise typer.Exit(2)
    engine = create_engine(sqlite_url(ledger))
    from xfq.adapters.sql.ledger import stored_spec
    from xfq.adapters.sql.schema import migrate

    migrate(engine)  # a ledger from before settlement gets its (empty) settlement tables

    spec_text = stored_spec(engine)
    if spec_text is None:
        errors.print(f"xfq reconcile: {ledger} holds no campaign")
        raise typer.Exit(2)
    campaign = parse_campaign(spec_text, f"{ledger} (stored spec)")
    answered = answers.read_text(encoding="utf-8").split() if answers else None
    figures = gather(engine, with_ids=answered is not None, campaign=campaign)
    checks = reconcile(campaign, figures, answered)
    print_checks(console, checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def serve(
    spec: Annotated[
        Path | None, typer.Option(help="Campaign file to load if the ledger has none.")
    ] = None,
    ledger: Annotated[Path, typer.Option(help="SQLite ledger file.")] = Path("var/xfq/ledger.db"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the API and pages on the embedded default (one process, SQLite)."""
    import uvicorn

    from xfq.api.app import create_app
    from xfq.bootstrap import build
    from xfq.config import Settings

    settings = Settings(database_url=f"sqlite:///{ledger}", spec_path=spec)  # + XFQ_* env
    container = build(settings)
    from xfq.housekeeping import Housekeeper

    jobs = Housekeeper(container)  # expiry at the end of validity, due rollovers
    jobs.start()
    base = f"http://{host}:{port}"
    console.print(f"xfq serves {base}")
    console.print(f"  wallet {base}/   till {base}/merchant   dashboard {base}/ops")
    console.print(f"  API docs {base}/docs   OpenAPI {base}/openapi.json")
    try:
        uvicorn.run(create_app(container), host=host, port=port, log_level="warning")
    finally:
        jobs.stop()
        container.close()


def main() -> None:
    try:
        app()
    except SpecError as error:
        for problem in error.problems:
            errors.print(problem, markup=False, highlight=False)
        sys.exit(2)
    except XfqError as error:
        errors.print(f"xfq: {error}", markup=False, highlight=False)
        sys.exit(2)
