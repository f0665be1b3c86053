"""The dashboard's fraud review section in real headless Chromium: an operator confirms a flag
and suspends the merchant through the page's form."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from test_pages import Server, browser, desktop, server, shot  # noqa: F401  (fixtures)

from xfq.adapters.sql.fraud import store_flags
from xfq.domain.fraud import Flag, Rule

pytestmark = pytest.mark.timeout(120)


@pytest.mark.browser
def test_an_operator_confirms_a_flag_from_the_dashboard(
    server: Server,  # noqa: F811
    desktop: Page,  # noqa: F811
) -> None:
    server.enroll("shop-9", "retail")
    flag = Flag(
        Rule.THRESHOLD_HUGGING,
        "shop-9",
        None,
        ("rd1", "rd2"),
        {"hugging": 9, "orders": 10},
        "shop-9: 9 of 10 voucher orders (90%) were within 2% above the voucher's threshold.",
    )
    store_flags(server.container.ledger.engine, [flag], server.clock.now())
    page = desktop
    page.goto(server.url + "/ops")
    page.get_by_label("用户标识").fill("op-fraud")
    page.get_by_role("button", name="登录").click()
    section = page.locator("#fraud")
    expect(section.get_by_role("heading", name="套现风险提示")).to_be_visible()
    expect(section.get_by_text("shop-9: 9 of 10 voucher orders")).to_be_visible()
    row = section.locator(f'tr[data-flag="{flag.id}"]')
    row.locator(f"#reason-c-{flag.id}").fill("收银记录均为 180 元整")
    row.get_by_label("同时暂停该商户").check()
    row.get_by_role("button", name="确认").click()
    expect(page.locator(f'td[data-flag-status="{flag.id}"]')).to_contain_text("已确认")
    expect(page.locator("#fraud-counts")).to_have_text("待审核 0 · 已确认 1 · 已排除 0")
    shot(page, "ops-fraud-review")
    merchants = server.http.get("/v1/ops/merchants", headers=server.token("op", "operator"))
    assert {m["id"]: m["status"] for m in merchants.json()}["shop-9"] == "suspended"
