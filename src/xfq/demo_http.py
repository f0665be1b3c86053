"""`xfq demo` through HTTP: a real server on a loopback port, driven as wallets and tills would."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from xfq.adapters.sql.figures import gather
from xfq.adapters.sql.fraud import save_locations
from xfq.adapters.sql.schema import create_engine, sqlite_url
from xfq.demo import (
    print_checks,
    print_feed_hint,
    print_fraud,
    print_summary,
    progress_bars,
    scan_flags,
)
from xfq.domain.campaign import Campaign, Round
from xfq.domain.fraud import GeoPoint
from xfq.services.reconcile import Check, reconcile
from xfq.simulation.fraud import FRAUD_RATE, FraudTruth, Holding, Locate, plan_rings
from xfq.simulation.fraud_http import play_rings_over_http
from xfq.simulation.http_client import HttpPool
from xfq.simulation.over_http import DemoIdentityProvider, Driver, HttpGrabResult, Till
from xfq.simulation.population import make_merchants, make_population
from xfq.simulation.spending import write_demo_feed
from xfq.simulation.week import WeekResult
from xfq.spec import load_campaign

CONNECTIONS = 256
_PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class HttpDemoOutcome:
    ledger_path: Path
    base_url: str
    grab: HttpGrabResult
    week: WeekResult
    checks: list[Check]
    fraud: FraudTruth | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    spec: Path, ledger: Path, port: int, idp: DemoIdentityProvider, start: str
) -> subprocess.Popen[bytes]:
    trusted = idp.trusted()
    env = {
        **os.environ,
        "XFQ_ISSUERS": json.dumps(
            [{"issuer": trusted.issuer, "public_key_pem": trusted.public_key_pem}]
        ),
        "XFQ_SIMULATED_START": start,
        # The demo's citizens hammer the grab on purpose; their limits are tested elsewhere.
        "XFQ_CLAIM_RATE_PER_PERSON_PER_S": "1000",
        "XFQ_CLAIM_BURST_PER_PERSON": "1000",
        "XFQ_CLAIM_RATE_PER_ADDRESS_PER_S": "1000000",
        "XFQ_CLAIM_BURST_PER_ADDRESS": "1000000",
    }
    command = [
        sys.executable,
        "-m",
        "xfq",
        "serve",
        "--spec",
        str(spec),
        "--ledger",
        str(ledger),
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        preexec_fn=_end_with_parent,  # noqa: PLW1509 (no threads yet)
    )
    _wait_until_up(server, port)
    return server


def _end_with_parent() -> None:
    """Linux: the server gets SIGTERM if the demo dies, so no server outlives its demo."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_up(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the xfq server exited with code {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(
        f"the xfq server did not listen on port {port} within {START_TIMEOUT_S:.0f} s"
    )


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _drive(
    port: int,
    idp: DemoIdentityProvider,
    campaign: Campaign,
    rnd: Round,
    population: int,
    merchants_per_category: int,
    seed: int,
    console: Console,
    fraud_rate: float,
    locate: Locate,
) -> tuple[HttpGrabResult, WeekResult, FraudTruth]:
    pool = HttpPool("127.0.0.1", port, CONNECTIONS)
    await pool.open()
    try:
        driver = Driver(pool, idp, campaign)
        await driver.set_clock(rnd.opens_at - timedelta(days=1))
        merchants = make_merchants(
            sorted({t.category for t in rnd.types}), merchants_per_category, seed
        )
        tills = await driver.enroll(merchants)
        people = make_population(rnd, population, seed)
        with progress_bars(console) as progress:
            task = progress.add_task(f"grab {rnd.name} over HTTP", total=None)
            grab = await driver.grab(rnd, people, lambda n: progress.advance(task, n))
            progress.update(task, total=progress.tasks[task].completed)
            truth, honest = await _plant_fraud(driver, grab, tills, seed, fraud_rate, locate)
            task = progress.add_task("week: tills over HTTP", total=len(grab.issued))
            week = await driver.week(honest, tills, seed, lambda n: progress.advance(task, n))
            progress.update(task, completed=len(grab.issued))
        await driver.set_clock(rnd.opens_at + timedelta(days=7))
        expired = await pool.request("POST", "/v1/ops/expire", driver.bearer("demo-operator"))
        assert expired.status == 200, expired.body
        return grab, week, truth
    finally:
        await pool.close()


async def _plant_fraud(
    driver: Driver,
    grab: HttpGrabResult,
    tills: list[Till],
    seed: int,
    rate: float,
    locate: Locate,
) -> tuple[FraudTruth, dict[str, tuple[str, str]]]:
    """Colluding tills ring up their rings (see `simulation.fraud`); the rest shop honestly."""
    rng = random.Random(seed + 7)
    holdings = [Holding(v, person, type_id) for v, (person, type_id) in grab.issued.items()]
    merchants = [t.merchant for t in tills]
    truth, rings = plan_rings(driver.campaign, holdings, merchants, rate, rng, locate)
    await play_rings_over_http(driver, {t.merchant.id: t for t in tills}, rings, truth, rng)
    honest = {v: held for v, held in grab.issued.items() if held[0] not in truth.ring}
    return truth, honest


def run_http_demo(
    spec: Path,
    workdir: Path,
    population: int,
    merchants_per_category: int,
    seed: int,
    round_id: str,
    keep_serving: bool,
    console: Console,
    fraud_rate: float = FRAUD_RATE,
) -> HttpDemoOutcome:
    campaign = load_campaign(spec)
    rnd = campaign.round(round_id)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ledger = workdir / "ledger.db"
    idp = DemoIdentityProvider(environment="development")
    port = free_port()
    start = (rnd.opens_at - timedelta(days=1)).isoformat()
    server = start_server(spec, ledger, port, idp, start)
    base = f"http://127.0.0.1:{port}"
    try:
        console.print(
            f"xfq serves {base}: dashboard {base}/ops, wallet {base}/, till {base}/merchant"
        )
        engine = create_engine(sqlite_url(ledger))

        def locate(kind: str, points: dict[str, GeoPoint]) -> None:
            save_locations(engine, kind, points)

        grab, week, truth = asyncio.run(
            _drive(
                port,
                idp,
                campaign,
                rnd,
                population,
                merchants_per_category,
                seed,
                console,
                fraud_rate,
                locate,
            )
        )
        figures = gather(engine, with_ids=True, campaign=campaign)
        checks = reconcile(campaign, figures, grab.issued)
        types = [t for t in figures.types if t.round_id == rnd.id]
        print_summary(console, f"{campaign.name} {rnd.name} (over HTTP)", types, grab, week)
        print_checks(console, checks)
        print_fraud(
            console, scan_flags(sqlite_url(ledger), rnd.opens_at + timedelta(days=7)), truth
        )
        console.print(f"Ledger: [bold]{ledger}[/]")
        ids = [p.citizen.person_id for p in make_population(rnd, population, seed)]
        feed = write_demo_feed(ledger, campaign, rnd, ids, workdir / "spending.parquet", seed)
        print_feed_hint(console, ledger, rnd.id, feed)
        if keep_serving:
            console.print(f"Dashboard: [bold]{base}/ops[/] — Ctrl-C to stop the server")
            _serve_until_interrupted(server)
    finally:
        stop_server(server)
    return HttpDemoOutcome(ledger, base, grab, week, checks, truth)


def _serve_until_interrupted(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        server.wait()
