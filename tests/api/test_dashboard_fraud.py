"""The fraud review section of the operators' dashboard: flags with their sentence, confirm
(with suspension) and dismiss through the page, refusals shown, auditors read only."""

from __future__ import annotations

import pytest
from conftest import Api

from xfq.adapters.sql.fraud import store_flags
from xfq.domain.fraud import Flag, Rule

pytestmark = pytest.mark.anyio


def plant(api: Api, merchant_id: str, rule: Rule = Rule.OPENING_BURST) -> Flag:
    flag = Flag(
        rule,
        merchant_id,
        None,
        ("rd1",),
        {"in_window": 7, "orders": 9},
        f"{merchant_id}: 7 voucher orders were redeemed within 30 minutes of the vouchers' "
        "release.",
    )
    store_flags(api.container.ledger.engine, [flag], api.clock.now())
    return flag


async def sign_in(api: Api, role: str = "operator") -> None:
    login = await api.client.post("/ops/login", data={"subject": f"{role}-page", "role": role})
    assert login.status_code == 303


async def test_an_operator_confirms_a_flag_and_suspends_the_merchant_from_the_page(
    api: Api,
) -> None:
    await api.enroll("shop-1", "retail")
    await api.enroll("shop-2", "retail")
    burst = plant(api, "shop-1")
    other = plant(api, "shop-2", Rule.FAR_PAYERS)
    await sign_in(api)
    page = await api.client.get("/ops?lang=en")
    assert "Cash-out fraud signals" in page.text and "Open 2 · confirmed 0" in page.text
    assert "shop-1: 7 voucher orders were redeemed within 30 minutes" in page.text
    assert f'action="/ops/fraud/{burst.id}/confirm"' in page.text

    confirmed = await api.client.post(
        f"/ops/fraud/{burst.id}/confirm", data={"reason": "ring at 10:05", "suspend": "on"}
    )
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/ops#fraud"
    dismissed = await api.client.post(
        f"/ops/fraud/{other.id}/dismiss", data={"reason": "a tourist shop"}
    )
    assert dismissed.status_code == 303
    page = await api.client.get("/ops?lang=en")
    assert "Open 0 · confirmed 1 · dismissed 1" in page.text
    assert "operator-page: ring at 10:05" in page.text and "/confirm" not in page.text
    merchants = (await api.client.get("/v1/ops/merchants", headers=api.ops("m"))).json()
    assert {m["id"]: m["status"] for m in merchants}["shop-1"] == "suspended"


async def test_a_refused_review_is_shown_on_the_page(api: Api) -> None:
    await api.enroll("shop-1", "retail")
    flag = plant(api, "shop-1")
    await sign_in(api)
    await api.client.post(f"/ops/fraud/{flag.id}/dismiss", data={"reason": "fine"})
    again = await api.client.post(f"/ops/fraud/{flag.id}/confirm", data={"reason": "x"})
    assert (
        again.status_code == 303
        and "fraud_error=flag_already_reviewed" in again.headers["location"]
    )
    page = await api.client.get(again.headers["location"].replace("#fraud", "&lang=en"))
    assert "Not done (flag_already_reviewed)" in page.text and "dismissed already" in page.text


async def test_auditors_see_the_flags_without_the_forms(api: Api) -> None:
    await api.enroll("shop-1", "retail")
    flag = plant(api, "shop-1")
    await sign_in(api, "auditor")
    page = await api.client.get("/ops")
    assert "套现风险提示" in page.text and flag.id in page.text
    assert "/ops/fraud/scan" not in page.text and f"/ops/fraud/{flag.id}/confirm" not in page.text
    refused = await api.client.post(f"/ops/fraud/{flag.id}/confirm", data={"reason": "x"})
    assert refused.status_code == 303 and refused.headers["location"] == "/ops"
    stored = (await api.client.get(f"/v1/ops/fraud/flags/{flag.id}", headers=api.ops("g"))).json()
    assert stored["status"] == "open"


async def test_the_page_runs_a_scan(api: Api) -> None:
    await sign_in(api)
    scanned = await api.client.post("/ops/fraud/scan")
    assert scanned.status_code == 303 and scanned.headers["location"] == "/ops#fraud"
    page = await api.client.get("/ops?lang=en")
    assert "No fraud signals." in page.text
