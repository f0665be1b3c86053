"""The three pages in real headless Chromium (Debian's), against a live uvicorn server.

Each browser test starts its own server on a free loopback port, on a temp SQLite ledger, with a
simulated clock the test moves (five minutes before the 10:00 opening to begin with). The pages
are driven through Playwright with `executable_path`; no browser is downloaded. Screenshots land
in `artifacts/screenshots/`. A few checks that need no browser (the event stream's bound, forms
from other sites, headers) run over plain HTTP.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.bootstrap import Container, build
from xfq.config import Settings
from xfq.web import install

pytestmark = pytest.mark.timeout(120)

CHROMIUM = Path("/usr/bin/chromium")

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "taiyuan-2022" / "campaign.toml"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
OPENING = datetime(2022, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 10_000
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}

# A small campaign for the dashboard, so a type can be sold out by a handful of claims.
TINY_TOWN = """
[campaign]
id = "tiny-town"
name = "小镇消费券"
city = "小镇 Tiny Town"
timezone = "Asia/Shanghai"

[[categories]]
id = "retail"
name = "零售通用"
name_en = "Retail, general"

[checkout]
threshold_base = "after_merchant_promotion"
one_voucher_per_order = true

[refunds]
full_refund_restores = true
partial = "keep_if_threshold_met"

[rollover]
enabled = false
sources = ["unclaimed", "expired"]

[[rounds]]
id = "t1"
number = 1
name = "第一轮"
opens_at = 2022-03-05T10:00:00
claim_closes_at = 2022-03-12T00:00:00
issuance = "grab"
validity = { kind = "calendar_days", days = 7 }

[rounds.limits]
per_type = 1
per_category = 2
per_round = 2

[rounds.eligibility]
residencies = ["permanent", "work", "study", "visit"]
require_in_city = true

[[rounds.types]]
id = "t1-retail-30-6"
category = "retail"
threshold_yuan = 30
discount_yuan = 6
count = 3
channel = "web"

[[rounds.types]]
id = "t1-retail-180-40"
category = "retail"
threshold_yuan = 180
discount_yuan = 40
count = 100
channel = "web"
"""


@dataclass
class Till:
    key_id: str
    secret: str


@dataclass
class Server:
    """A running xfq and an HTTP client of its API, as a wallet app or an operator would use."""

    url: str
    container: Container
    clock: SimulatedClock
    http: httpx.Client
    app: Any  # the FastAPI app behind ClaimFront

    def token(self, subject: str, role: str = "citizen") -> dict[str, str]:
        answer = self.http.post("/dev/token", json={"subject": subject, "role": role})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def claim(self, person: str, type_id: str, key: str = "k1") -> dict[str, Any]:
        headers = {**self.token(person), "Idempotency-Key": f"{person}-{type_id}-{key}"}
        answer = self.http.post("/v1/claims", json={"type_id": type_id}, headers=headers)
        assert answer.status_code in (200, 201), answer.text
        body: dict[str, Any] = answer.json()
        return body

    def till_code(self, person: str, voucher_id: str) -> str:
        path = f"/v1/vouchers/{voucher_id}/till-code"
        answer = self.http.post(path, headers=self.token(person))
        assert answer.status_code == 200, answer.text
        code: str = answer.json()["code"]
        return code

    def enroll(self, merchant_id: str, category: str) -> Till:
        ops = self.token("op-setup", "operator")
        body = {"id": merchant_id, "name": f"{merchant_id} shop", "category": category}
        enroll = {**ops, "Idempotency-Key": f"enroll-{merchant_id}"}
        made = self.http.post("/v1/ops/merchants", json=body, headers=enroll)
        assert made.status_code == 201, made.text
        approve = {**ops, "Idempotency-Key": f"approve-{merchant_id}"}
        approved = self.http.post(f"/v1/ops/merchants/{merchant_id}/approve", headers=approve)
        assert approved.status_code == 200, approved.text
        return Till(approved.json()["key_id"], approved.json()["secret"])

    def voucher_state(self, person: str, voucher_id: str) -> str:
        wallet = self.http.get("/v1/wallet", headers=self.token(person)).json()
        return str(next(v["state"] for v in wallet["vouchers"] if v["id"] == voucher_id))


def _serve(tmp_path: Path, spec: Path) -> Iterator[Server]:
    clock = SimulatedClock(OPENING - timedelta(minutes=5))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", spec_path=spec)
    container = build(settings, clock)
    front = create_app(container)
    install(front.app)  # a no-op once create_app installs the pages itself
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        front, log_level="warning", lifespan="off", ws="none", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            yield Server(url, container, clock, http, front.app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        container.close()
        assert not thread.is_alive(), "the server did not stop"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from _serve(tmp_path, EXAMPLE)


@pytest.fixture
def tiny_server(tmp_path: Path) -> Iterator[Server]:
    spec = tmp_path / "tiny-town.toml"
    spec.write_text(TINY_TOWN, encoding="utf-8")
    yield from _serve(tmp_path, spec)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's Chromium is not installed at /usr/bin/chromium "
            "(apt-get install -y chromium fonts-wqy-microhei); the browser tests need it"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        yield launched
        launched.close()


def _context(browser: Browser, viewport: ViewportSize) -> BrowserContext:
    context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Europe/Paris")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    return context


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = _context(browser, PHONE)
    yield context.new_page()
    context.close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:
    context = _context(browser, DESKTOP)
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.browser
def test_citizen_grabs_at_ten_and_shows_a_refreshing_code(server: Server, phone: Page) -> None:
    page = phone
    page.clock.install()  # the page's timers; time still flows until the test jumps it
    page.goto(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.get_by_label("用户标识").fill("citizen-1")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_text("已登录：citizen-1")).to_be_visible()

    count = server.container.running()[0].voucher_type("r6-retail-180-40")[1].count
    card = page.locator('li[data-type="r6-retail-180-40"]')
    expect(page.get_by_role("heading", name="第六轮")).to_be_visible()
    expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"^00:0[45]:[0-5]\d$"))
    expect(card.locator(".label")).to_have_text("满180减40")
    expect(card.locator(".stock")).to_have_text(f"剩余 {count} / {count} 张")
    expect(card.get_by_role("button")).to_be_disabled()
    expect(card.get_by_role("button")).to_have_text("未开始")
    shot(page, "citizen-countdown")

    server.clock.set(OPENING)  # 10:00: the round's stock refresh turns the buttons on
    expect(card.get_by_role("button")).to_be_enabled()
    card.get_by_role("button").click()
    expect(page.locator("#claim-result")).to_have_text("抢到了！券已放入券包。")
    voucher = page.locator("#wallet li.voucher")
    expect(voucher).to_have_count(1)
    expect(voucher.locator(".label")).to_have_text("满180减40")
    expect(voucher.locator(".state")).to_have_text("可使用")
    expect(voucher.locator(".validity")).to_have_text("有效期 2022-03-05 10:00 至 2022-03-11 23:59")
    expect(card.locator(".stock")).to_have_text(f"剩余 {count - 1} / {count} 张")

    voucher.get_by_role("button", name="出示券码").click()
    code = voucher.locator(".code-text")
    expect(code).to_have_text(re.compile(r"^XFQ1\.[\w-]+\.[\w-]+$"))
    expect(voucher.locator(".qr svg")).to_be_visible()
    expect(voucher.locator(".till-code .note")).to_contain_text("10:01:30")
    first_code = code.inner_text()
    shot(page, "citizen-wallet")

    # A minute later on both clocks, the page has fetched a new code by itself.
    server.clock.advance(timedelta(minutes=1))
    page.clock.fast_forward("01:01")
    expect(code).not_to_have_text(first_code)
    expect(code).to_have_text(re.compile(r"^XFQ1\."))
    expect(voucher.locator(".till-code .note")).to_contain_text("10:02:30")


def _quote(page: Page, amount: str, promotion: str, code: str) -> None:
    page.get_by_label("订单金额（元）").fill(amount)
    page.get_by_label("本店优惠（元）").fill(promotion)
    page.get_by_label("顾客券码（扫码或粘贴）").fill(code)
    page.get_by_role("button", name="试算").click()


@pytest.mark.browser
def test_merchant_quotes_redeems_and_refunds(server: Server, desktop: Page) -> None:
    page = desktop
    server.clock.set(OPENING)
    till = server.enroll("corner-shop", "retail")
    retail = server.claim("citizen-2", "r6-retail-180-40")["voucher"]["id"]
    catering = server.claim("citizen-2", "r6-catering-200-50")["voucher"]["id"]

    page.goto(server.url + "/merchant")
    page.get_by_label("密钥 ID").fill(till.key_id)
    page.get_by_label("密钥", exact=True).fill(till.secret)
    message = page.locator("#result #quote-message")

    _quote(page, "150", "0", server.till_code("citizen-2", retail))
    expect(message).to_have_text("还差 30.00 元才能使用这张券。")
    _quote(page, "250", "0", server.till_code("citizen-2", catering))
    expect(page.locator("#result")).to_have_text("这张券不能在本店的券类使用。")

    _quote(page, "200", "10", server.till_code("citizen-2", retail))
    expect(message).to_have_text("优惠 40.00 元，顾客实付 150.00 元。")
    expect(page.locator("#quote-pays")).to_have_text("150.00")
    shot(page, "merchant-quote")

    page.get_by_role("button", name="确认核销").click()
    expect(page.locator("#redeem-message")).to_have_text("核销成功。")
    assert server.voucher_state("citizen-2", retail) == "redeemed"

    expect(page.get_by_label("退货金额（元）")).to_have_value("190.00")
    page.get_by_role("button", name="退款", exact=True).click()
    expect(page.locator("#refund-result")).to_have_text("已退款，券已退回顾客券包。")
    assert server.voucher_state("citizen-2", retail) == "issued"
    shot(page, "merchant-refund")

    # A code shown more than 90 s ago has lapsed; a voucher past its validity is expired.
    stale = server.till_code("citizen-2", retail)
    server.clock.advance(timedelta(seconds=91))
    _quote(page, "200", "0", stale)
    expect(page.locator("#result")).to_have_text("券码已失效：请顾客刷新券码。")
    server.clock.set(datetime(2022, 3, 12, 0, 0, tzinfo=OPENING.tzinfo))
    _quote(page, "200", "0", server.till_code("citizen-2", retail))
    expect(message).to_have_text("这张券已过期。")

    page.get_by_label("密钥", exact=True).fill("not-the-secret")
    _quote(page, "200", "0", server.till_code("citizen-2", retail))
    expect(page.locator("#result")).to_have_text(re.compile(r"^密钥被拒绝（bad_signature）"))


@pytest.mark.browser
def test_dashboard_numbers_update_live(tiny_server: Server, desktop: Page) -> None:
    server, page = tiny_server, desktop
    server.clock.set(OPENING)
    page.goto(server.url + "/ops")
    page.get_by_label("用户标识").fill("op-web")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="运营看板 · 小镇消费券")).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("实时更新中")
    small = page.locator('td[data-remaining="t1-retail-30-6"]')
    big = page.locator('td[data-remaining="t1-retail-180-40"]')
    expect(small).to_have_text("3")
    expect(page.locator('td[data-sold-out="t1-retail-30-6"]')).to_have_text("—")
    page.evaluate("window.sameDocument = true")

    for person in ("p1", "p2", "p3", "p4"):
        server.claim(person, "t1-retail-30-6")
    server.claim("p1", "t1-retail-180-40")
    server.claim("p1", "t1-retail-180-40", key="again-with-a-new-key")

    expect(small).to_have_text("0")
    expect(big).to_have_text("99")
    expect(page.locator('td[data-sold-out="t1-retail-30-6"]')).to_have_text("03-05 10:00:00")
    expect(page.locator('td[data-answer="issued"]')).to_have_text("4")
    expect(page.locator('td[data-answer="sold_out"]')).to_have_text("1")
    expect(page.locator('td[data-answer="limit_reached"]')).to_have_text("1")
    expect(page.locator("#peak")).to_have_text("6")
    assert page.evaluate("window.sameDocument") is True, "the numbers came by reloading"
    assert int(page.evaluate("document.body.dataset.liveUpdates")) >= 2
    shot(page, "ops-dashboard")


@pytest.mark.browser
def test_english_switch(server: Server, desktop: Page) -> None:
    page = desktop
    page.goto(server.url + "/?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Vouchers · my wallet")).to_be_visible()
    expect(page.get_by_role("heading", name="Round 6")).to_be_visible()
    expect(page.locator('li[data-type="r6-retail-180-40"] .label')).to_have_text("¥40 off ¥180")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot(page, "citizen-english")

    page.get_by_role("link", name="Merchant checkout").click()  # the choice is remembered
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_label("Order amount (yuan)")).to_be_visible()
    page.get_by_role("link", name=re.compile("中文")).click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_label("订单金额（元）")).to_be_visible()


# Without a browser ------------------------------------------------------------------------------


def test_live_events_need_an_operator_and_end_after_their_bound(server: Server) -> None:
    server.clock.set(OPENING)
    live = server.app.state.xfq_web_live
    live.interval_s, live.max_events = 0.01, 3
    client = server.http
    assert client.get("/ops/events").status_code == 401
    client.post("/wallet/login", data={"subject": "alice"}, follow_redirects=False)
    assert client.get("/ops/events").status_code == 401  # a citizen is not an operator
    signed = client.post("/ops/login", data={"subject": "op1"}, follow_redirects=False)
    assert signed.status_code == 303
    stream = client.get("/ops/events")
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data:")]
    assert len(events) == 3  # then the stream ends and the browser reconnects by itself
    assert events[0]["remaining"]["r6-retail-180-40"] == 23_250
    assert len(events[0]["series"]) == 60 and events[0]["now"] == "2022-03-05 10:00:00"


def test_forms_from_another_site_are_refused(server: Server) -> None:
    client = server.http
    forged = client.post(
        "/wallet/login",
        data={"subject": "mallory"},
        headers={"Origin": "https://elsewhere.example"},
        follow_redirects=False,
    )
    assert forged.status_code == 403 and "xfq_citizen" not in forged.cookies
    ours = client.post(
        "/wallet/login",
        data={"subject": "alice"},
        headers={"Origin": server.url},
        follow_redirects=False,
    )
    assert ours.status_code == 303
    assert "samesite=strict" in ours.headers["set-cookie"].lower()
    assert "httponly" in ours.headers["set-cookie"].lower()


def test_the_merchant_secret_is_neither_echoed_nor_kept(server: Server) -> None:
    till = server.enroll("shop", "retail")
    form = {"key_id": till.key_id, "secret": till.secret, "amount": "200", "code": "XFQ1.a.b"}
    answer = server.http.post("/merchant/quote", data=form)
    assert answer.status_code == 200 and "这不是本平台签发的券码" in answer.text
    assert till.secret not in answer.text and till.secret not in str(answer.headers)
    assert not answer.cookies


def test_pages_are_self_contained(server: Server) -> None:
    client = server.http
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert '<html lang="zh-CN">' in page.text and "http" not in page.text.split("<body>")[0]
    htmx = client.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and htmx.text.startswith("/*! htmx 2.0.11")
    assert "Zero-Clause BSD" in htmx.text[:2000]
    assert client.get("/openapi.json").json()["paths"].get("/") is None
