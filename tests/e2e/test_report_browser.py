"""The round report as a file and on /ops, in Debian's headless Chromium, and as a command.

A demo ledger is made once for the module. The HTML file is opened from disk with every
network request refused, so the test fails if the report needs anything from outside the file;
the dashboard's report is read from a live server (uvicorn on a loopback port) under its
Content-Security-Policy. Screenshots land in `artifacts/screenshots/`.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, Route, sync_playwright
from rich.console import Console

from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.demo import EXAMPLE, run_demo
from xfq.reports.html import render_page
from xfq.reports.round_report import report_for

pytestmark = pytest.mark.timeout(180)

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]
AFTER_THE_WEEK = datetime(2022, 3, 12, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CHARTS = ["by_type", "sell_out", "daily", "did"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    assert run_demo(EXAMPLE, workdir, 8000, 20, 2022, "r6", Console(file=io.StringIO())).ok
    return workdir


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        yield launched
        launched.close()


def charts_drawn(page: Page) -> dict[str, int]:
    """Each chart image's drawn width (0 when the browser could not decode or load it)."""
    found: dict[str, int] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('img[data-chart]')]"
        ".map(i => [i.dataset.chart, i.complete ? i.naturalWidth : 0]))"
    )
    return found


@pytest.mark.browser
def test_the_html_file_opens_offline_with_its_charts_drawn(
    demo: Path, browser: Browser, tmp_path: Path
) -> None:
    report = report_for(str(demo / "ledger.db"), "r6", AFTER_THE_WEEK, demo / "spending.parquet")
    path = tmp_path / "report.html"
    path.write_text(render_page(report, "zh"), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    outside: list[str] = []

    def refuse(route: Route) -> None:
        outside.append(route.request.url)
        route.abort()

    context.route("http*://**", refuse)
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_load_state("load")

    drawn = charts_drawn(page)
    assert sorted(drawn) == sorted(CHARTS)
    assert all(width > 300 for width in drawn.values()), drawn
    assert outside == []
    assert page.locator("script").count() == 0
    claimed = page.locator("[data-figure=claimed]").inner_text()
    assert claimed == f"{report.figures.total.claimed:,}"
    assert "因果拉动比" in page.locator("#causal").inner_text()
    # The demo's ledger has the money and fraud tables: their sections are shown, not "n/a".
    assert page.locator("#section-settlement").get_attribute("data-available") == "yes"
    assert page.locator("#section-fraud").get_attribute("data-available") == "yes"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "round-report.png"), full_page=True)
    context.close()


@pytest.fixture
def live(demo: Path) -> Iterator[str]:
    settings = Settings(database_url=f"sqlite:///{demo / 'ledger.db'}")
    container = build(settings, SimulatedClock(AFTER_THE_WEEK))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(container), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        container.close()


@pytest.mark.browser
def test_operators_read_the_same_report_on_the_dashboard(live: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live)
    page = context.new_page()
    page.goto("/ops/report/r6")  # not signed in: back to the sign-in page
    assert page.url == f"{live}/ops"
    page.fill("#subject", "auditor-1")
    page.locator("form[action='/ops/login'] button[type=submit]").click()
    page.wait_for_url(f"{live}/ops")
    page.locator("#report-link").click()
    page.wait_for_url(f"{live}/ops/report/r6")
    page.wait_for_load_state("load")

    drawn = charts_drawn(page)
    assert sorted(drawn) == ["by_type", "daily", "sell_out"]  # no feed on the server: no DiD
    assert all(width > 300 for width in drawn.values()), drawn
    assert page.locator("#causal .na").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "ops-round-report.png"), full_page=True)
    missing = page.request.get(f"{live}/ops/report/r9")
    assert missing.status == 404
    assert "r9" in missing.text()
    context.close()


def test_xfq_report_writes_html_and_xlsx(demo: Path, tmp_path: Path) -> None:
    html, xlsx = tmp_path / "r6.html", tmp_path / "r6.xlsx"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xfq",
            "report",
            f"sqlite:///{demo / 'ledger.db'}",
            "r6",
            "--html",
            str(html),
            "--xlsx",
            str(xlsx),
            "--spending",
            str(demo / "spending.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "extra yuan per yuan of subsidy" in done.stdout
    assert "settlement: available" in done.stdout and "fraud: available" in done.stdout
    assert html.read_text(encoding="utf-8").count("data:image/svg+xml;base64,") == 4
    assert "Types" in load_workbook(xlsx).sheetnames


def test_xfq_report_of_an_unknown_round_says_so_without_a_traceback(demo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xfq", "report", str(demo / "ledger.db"), "r9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "round 'r9' is not in the ledger's campaign (r5, r6)" in done.stderr
    assert "Traceback" not in done.stderr
