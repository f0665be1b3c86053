"""The `xfq` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from xfq.config import Settings, UnsafeSettings, settings_problems, unknown_variables
from xfq.domain.campaign import Campaign
from xfq.domain.errors import SpecError, XfqError
from xfq.integrity_cli import audit_app, fraud_app
from xfq.lottery_cli import lottery_app
from xfq.money_cli import expire_command, rollover_command, settle_command
from xfq.rehearse_cli import rehearse_command
from xfq.reports.cli import report_command
from xfq.services.reconcile import Check
from xfq.spec import parse_campaign
from xfq.spec.cli import spec_app

if TYPE_CHECKING:
    from xfq.adapters.redis.connect import SyncRedis
    from xfq.adapters.redis.layout import Layout
    from xfq.adapters.sql.ledger import SqlLedger

app = typer.Typer(
    help="xfq: consumption-voucher (消费券) campaigns end to end.", no_args_is_help=True
)
app.add_typer(spec_app, name="spec")
app.add_typer(lottery_app, name="lottery")
app.command("expire")(expire_command)
app.command("rehearse")(rehearse_command)
app.command("rollover")(rollover_command)
app.command("settle")(settle_command)
app.add_typer(audit_app, name="audit")
app.add_typer(fraud_app, name="fraud")
app.command("report")(report_command)
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
    fraud_rate: Annotated[
        float,
        typer.Option(min=0.0, max=0.5, help="Share of each category's merchants that collude."),
    ] = 0.03,
    postgres: Annotated[
        str | None,
        typer.Option(help="With --direct: an empty PostgreSQL database as the ledger (URL)."),
    ] = None,
) -> None:
    """Run the reference round: the grab at 10:00, the week of shopping, expiry, reconciliation.

    By default a server is started on a free loopback port and driven over HTTP; it keeps serving
    (dashboard URL printed) until Ctrl-C unless --exit.
    """
    from xfq.demo import EXAMPLE, run_demo
    from xfq.demo_http import run_http_demo

    spec_path = spec or EXAMPLE
    if postgres is not None and not direct:
        errors.print("xfq demo: --postgres needs --direct")
        raise typer.Exit(2)
    if direct:
        people = population or 300_000
        ok = run_demo(
            spec_path, workdir, people, merchants, seed, round_id, console, fraud_rate, postgres
        ).ok
    else:
        # Over HTTP one server process answers ~1,700 claims/s here: 20,000 people take ~1.5 min.
        people = population or 20_000
        keep_serving = not exit_when_done
        ok = run_http_demo(
            spec_path, workdir, people, merchants, seed, round_id, keep_serving, console, fraud_rate
        ).ok
    if not ok:
        raise typer.Exit(1)


@app.command("reconcile")
def reconcile_command(
    ledger: Annotated[
        str | None, typer.Argument(help="SQLite ledger file, or a postgresql:// URL.")
    ] = None,
    postgres: Annotated[str | None, typer.Option(help="PostgreSQL ledger (URL).")] = None,
    answers: Annotated[
        Path | None, typer.Option(help="Voucher ids that clients were answered `issued`.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Also check this Redis against the ledger.")
    ] = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Move into the ledger what Redis issued and it lacks.")
    ] = False,
) -> None:
    """Check every invariant of the design on a ledger; exit 1 if one fails."""
    from xfq.adapters.sql.figures import gather
    from xfq.adapters.sql.ledger import stored_spec
    from xfq.adapters.sql.schema import create_engine, database_url, is_postgres
    from xfq.demo import print_checks
    from xfq.services.reconcile import reconcile

    given = postgres or ledger
    if given is None:
        errors.print("xfq reconcile: name a ledger file or --postgres URL")
        raise typer.Exit(2)
    url = database_url(given)
    if not is_postgres(url) and not Path(url.removeprefix("sqlite:///")).is_file():
        errors.print(f"xfq reconcile: no ledger file at {given}")
        raise typer.Exit(2)
    engine = create_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    from xfq.adapters.sql.schema import migrate

    migrate(engine)  # a ledger from before settlement gets its (empty) settlement tables
    spec_text = stored_spec(engine)
    if spec_text is None:
        errors.print(f"xfq reconcile: {shown} holds no campaign")
        raise typer.Exit(2)
    campaign = parse_campaign(spec_text, f"{shown} (stored spec)")
    answered = answers.read_text(encoding="utf-8").split() if answers else None
    redis_checks = _redis_checks(url, campaign, redis_url, repair) if redis_url else []
    figures = gather(engine, with_ids=answered is not None, campaign=campaign)
    checks = sorted(reconcile(campaign, figures, answered) + redis_checks, key=lambda c: c.number)
    engine.dispose()
    print_checks(console, checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _redis_checks(ledger_url: str, campaign: Campaign, url: str, repair: bool) -> list[Check]:
    from xfq.adapters.redis.connect import UNAVAILABLE, is_cluster, sync_client
    from xfq.adapters.redis.layout import Layout, shards_key
    from xfq.adapters.redis.reconcile import check_redis
    from xfq.adapters.sql.ledger import SqlLedger

    sql = SqlLedger(ledger_url)
    try:
        redis = sync_client(url, is_cluster(url))
        shards = redis.get(shards_key(campaign.id))
        if shards is None:
            raise XfqError(f"campaign '{campaign.id}' is not loaded into the Redis at {url}")
        layout = Layout(campaign.id, int(str(shards)))
        if repair:
            _repair(redis, layout, campaign, sql)
        return check_redis(redis, layout, campaign, sql)
    except UNAVAILABLE as error:  # the ledger's checks still print; this one fails
        undone = "checked or repaired" if repair else "checked"
        detail = (
            f"Redis did not answer ({error}): nothing there was {undone} by this run; run it "
            "again once Redis is back (a repair run again does nothing twice)"
        )
        return [Check(8, "Redis answers", False, detail)]
    finally:
        sql.close()


def _repair(redis: SyncRedis, layout: Layout, campaign: Campaign, sql: SqlLedger) -> None:
    from xfq.adapters.redis.reconcile import repair_gaps

    done = repair_gaps(redis, layout, campaign, sql)
    console.print(f"repair: {done.moved} voucher(s) moved from Redis into the ledger")
    for m in done.topped_up:
        console.print(
            f"repair: {m.added_count:,} voucher(s) of {m.into_type_id} (round {m.into_round}), "
            f"rolled over from {m.from_type_id} (round {m.from_round}), added to Redis's stock"
        )


@app.command()
def persist(
    redis_url: Annotated[str, typer.Option("--redis", help="Redis (or Cluster) URL.")],
    ledger: Annotated[Path, typer.Option(help="SQLite ledger file.")] = Path("var/xfq/ledger.db"),
    postgres: Annotated[
        str | None, typer.Option(help="A PostgreSQL database as the ledger (URL).")
    ] = None,
    stale_ms: Annotated[
        int | None,
        typer.Option(
            min=100, help="Take over a dead persister's entries after this long [default: 30000]."
        ),
    ] = None,
) -> None:
    """Move the claims Redis issued into the ledger until Ctrl-C (as `serve --redis` does)."""
    import threading

    from xfq.adapters.redis.connect import storage_errors
    from xfq.adapters.sql.ledger import SqlLedger
    from xfq.adapters.sql.schema import database_url
    from xfq.bootstrap import redis_persister, serving_bounds

    shown = postgres or str(ledger)
    url = database_url(postgres) if postgres else f"sqlite:///{ledger}"
    sql = SqlLedger(url, bounds=serving_bounds(Settings()))  # XFQ_LEDGER_* from the env
    spec_text = sql.campaign_spec()
    if spec_text is None:
        raise XfqError(f"{shown} holds no campaign")
    campaign = parse_campaign(spec_text, f"{shown} (stored spec)")
    for round_id, (opens_at, closes_at) in sql.windows().items():
        campaign = campaign.with_claim_window(round_id, opens_at, closes_at)
    with storage_errors("the persister could not start"):
        persister = redis_persister(redis_url, campaign, sql, shards=1, stale_ms=stale_ms)
    console.print(f"xfq persists {redis_url} into {shown}; Ctrl-C stops")
    try:
        persister.run(threading.Event())
    except KeyboardInterrupt:
        pass
    finally:
        sql.close()


@app.command()
def serve(
    spec: Annotated[
        Path | None, typer.Option(help="Campaign file to load if the ledger has none.")
    ] = None,
    ledger: Annotated[
        Path | None, typer.Option(help="SQLite ledger file [default: XFQ_DATABASE_URL's].")
    ] = None,
    postgres: Annotated[
        str | None, typer.Option(help="A PostgreSQL database as the ledger (URL).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis", help="Decide claims in this Redis (or Cluster); persister inside."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (more than one needs --redis).")
    ] = 1,
    server: Annotated[
        str | None,
        typer.Option(
            help="uvicorn, granian (its RSGI interface) or granian-asgi; default: uvicorn in "
            "this process for one worker, granian worker processes for more."
        ),
    ] = None,
) -> None:
    """Serve the API and pages: the embedded claim engine (one process) on a SQLite or
    PostgreSQL ledger, or claims decided in Redis by several worker processes."""
    settings = Settings(spec_path=spec)  # + XFQ_* env
    chosen = postgres or (str(ledger) if ledger is not None else None)
    if chosen is not None:
        settings = Settings(spec_path=spec, database_url=chosen)
    if redis_url is not None:
        settings = settings.model_copy(update={"redis_url": redis_url})
    if server not in (None, "uvicorn", "granian", "granian-asgi"):
        errors.print(f"xfq serve: --server is uvicorn, granian or granian-asgi, not {server!r}")
        raise typer.Exit(2)
    if workers > 1 or (server or "").startswith("granian"):
        _serve_in_workers(settings, host, port, workers, server or "granian")
        return
    import uvicorn

    # Imported here, not above: the workers' branch must set PROMETHEUS_MULTIPROC_DIR first.
    from xfq.api.app import create_app
    from xfq.api.observability import log_config
    from xfq.bootstrap import build
    from xfq.gc_policy import tune_for_serving

    container = build(settings)
    from xfq.housekeeping import Housekeeper

    jobs = Housekeeper(container)  # expiry at the end of validity, due rollovers
    jobs.start()
    base = f"http://{host}:{port}"
    console.print(f"xfq serves {base}")
    console.print(f"  wallet {base}/   till {base}/merchant   dashboard {base}/ops")
    console.print(f"  API docs {base}/docs   OpenAPI {base}/openapi.json")
    app = create_app(container)
    tune_for_serving()
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=log_config(),  # JSON lines on stderr, for a log shipper
            access_log=False,  # a line per claim would cost more than the claim
        )
    finally:
        jobs.stop()
        container.close()


def _sqlite_under_workers(settings: Settings, workers: int) -> None:
    """Refuse several workers on a SQLite ledger in production; say what it costs elsewhere.

    Each worker holds an operator's Idempotency-Key in flight in its own memory (PostgreSQL's
    advisory locks hold it for all of them), so a retry that reaches another worker while the
    first request is answered acts a second time (an approval issues two keys). Development
    keeps it: the loopback rehearsal and the tests serve several workers from a SQLite file."""
    what = (
        f"{workers} workers on a SQLite ledger ({settings.database_url}) hold an operator's "
        "Idempotency-Key in flight per process only: a retry reaching another worker while the "
        "first request is answered acts twice"
    )
    if settings.environment == "production":
        errors.print(
            f"xfq serve: refused: {what}. With XFQ_ENVIRONMENT=production use a PostgreSQL "
            "ledger (--postgres URL or XFQ_DATABASE_URL=postgresql://…), or --workers 1",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2)
    errors.print(
        f"xfq serve: note: {what} (refused with XFQ_ENVIRONMENT=production; use --postgres)",
        markup=False,
        highlight=False,
    )


def _serve_in_workers(settings: Settings, host: str, port: int, workers: int, server: str) -> None:
    """Worker processes of granian or uvicorn, each building the app from the environment
    (xfq.api.asgi)."""
    import tempfile

    from granian import Granian
    from granian.constants import Interfaces

    from xfq.adapters.sql.schema import is_postgres
    from xfq.bootstrap import build, shared_secrets

    if workers > 1 and settings.redis_url is None:
        errors.print(
            "xfq serve: several workers need --redis: an embedded engine decides claims in "
            "one process only"
        )
        raise typer.Exit(2)
    if workers > 1 and not is_postgres(settings.database_url):
        _sqlite_under_workers(settings, workers)
    shared_secrets(settings)
    os.environ["XFQ_DATABASE_URL"] = settings.database_url
    if settings.spec_path is not None:
        os.environ["XFQ_SPEC_PATH"] = str(settings.spec_path)
    if settings.redis_url is not None:
        os.environ["XFQ_REDIS_URL"] = settings.redis_url
    with tempfile.TemporaryDirectory(prefix="xfq-metrics-") as metrics_dir:
        # Set before anything imports prometheus_client, which picks its multiprocess mode
        # then; the workers are forked from this process.
        if workers > 1:  # every worker's counts in each scrape
            os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        from xfq.api.observability import log_config

        build(settings).close()  # migrate, install the campaign, load Redis: once, not per worker
        console.print(f"xfq serves http://{host}:{port} with {workers} {server} worker(s)")
        if server == "uvicorn":
            import uvicorn

            uvicorn.run(
                "xfq.api.asgi:create",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_config=log_config(),
                access_log=False,
            )
            return
        rsgi = server == "granian"  # the claim without ASGI's messages (xfq.api.rsgi)
        Granian(
            "xfq.api.asgi:create_rsgi" if rsgi else "xfq.api.asgi:create",
            factory=True,
            interface=Interfaces.RSGI if rsgi else Interfaces.ASGI,
            address=host,
            port=port,
            workers=workers,
            websockets=False,
            # A worker that dies (kill -9, out of memory) is replaced instead of granian
            # stopping the whole server with it.
            respawn_failed_workers=True,
            log_dictconfig=log_config(),
        ).serve()


def _variables_checked() -> bool:
    """Warn of `XFQ_*` variables that name no setting; in production they stop the start."""
    problems = unknown_variables(dict(os.environ))
    production = os.environ.get("XFQ_ENVIRONMENT") == "production"
    for problem in problems:
        prefix = "xfq" if production else "xfq: warning"
        errors.print(f"{prefix}: {problem}", markup=False, highlight=False)
    return not (problems and production)


def main() -> None:
    if not _variables_checked():
        sys.exit(2)
    try:
        app()
    except SpecError as error:
        for problem in error.problems:
            errors.print(problem, markup=False, highlight=False)
        sys.exit(2)
    except XfqError as error:
        errors.print(f"xfq: {error}", markup=False, highlight=False)
        sys.exit(2)
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        for problem in settings_problems(error):
            errors.print(f"xfq: {problem}", markup=False, highlight=False)
        sys.exit(2)
    except UnsafeSettings as error:
        errors.print(f"xfq: {error}", markup=False, highlight=False)
        sys.exit(2)
