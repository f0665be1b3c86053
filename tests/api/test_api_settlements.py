"""Settlement over HTTP: operators read and close a day; a till downloads only its statement."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from conftest import OPENING, TZ, Api, Till

from xfq.api.auth.tokens import Role

pytestmark = pytest.mark.anyio
RETAIL = "r6-retail-180-40"


async def _sell(api: Api, till: Till, person: str, yuan: int, when: datetime) -> str:
    """`person` grabs a retail 满180减40 at the opening and spends it at `till` at `when`."""
    api.clock.set(OPENING)
    voucher = (await api.claim(person, RETAIL)).json()["voucher"]
    api.clock.set(when)
    code = await api.till_code(person, voucher["id"])
    order = {"list_price_fen": yuan * 100, "merchant_promotion_fen": 0}
    body = {"code": code, "order_ref": f"o-{person}", "order": order}
    done = await api.signed(till, "POST", "/v1/merchant/redemptions", body, key=f"r-{person}")
    assert done.status_code == 201, done.text
    redemption_id: str = done.json()["redemption"]["id"]
    return redemption_id


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_a_till_downloads_its_own_statement_and_nobody_elses(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    rival = await api.enroll("rival", "retail")
    mine = await _sell(api, shop, "alice", 200, datetime(2022, 3, 7, 11, tzinfo=TZ))
    await _sell(api, rival, "bob", 300, datetime(2022, 3, 7, 12, tzinfo=TZ))
    got = await api.signed(shop, "GET", "/v1/merchant/statements/2022-03-07")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = _rows(got.text)
    assert [(r["kind"], r["redemption_id"], r["owed_yuan"]) for r in rows] == [
        ("redemption", mine, "40.00"),
        ("merchant total", "", "40.00"),
    ]
    assert {r["merchant_id"] for r in rows} == {"shop"}
    unsigned = await api.client.get("/v1/merchant/statements/2022-03-07")
    assert unsigned.status_code == 401
    empty = _rows((await api.signed(shop, "GET", "/v1/merchant/statements/2022-03-08")).text)
    assert [r["kind"] for r in empty] == ["merchant total"] and empty[0]["owed_yuan"] == "0.00"


async def test_operators_read_close_and_reread_a_day(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    hotel = await api.enroll("hotel", "retail")
    await _sell(api, shop, "alice", 200, datetime(2022, 3, 7, 11, tzinfo=TZ))
    await _sell(api, hotel, "bob", 200, datetime(2022, 3, 7, 12, tzinfo=TZ))
    suspended = await api.client.post("/v1/ops/merchants/hotel/suspend", headers=api.ops("s-1"))
    assert suspended.status_code == 200
    reader = api.token("aud", Role.AUDITOR)
    day = (await api.client.get("/v1/ops/settlements/2022-03-07", headers=reader)).json()
    assert day["state"] == "open"
    assert (day["owed_fen"], day["payable_fen"], day["held_fen"]) == (8000, 4000, 4000)
    assert {s["merchant_id"]: s["status"] for s in day["statements"]} == {
        "hotel": "held",
        "shop": "payable",
    }

    early = await api.client.post("/v1/ops/settlements/2022-03-07/close", headers=api.ops("c-0"))
    assert early.status_code == 409 and early.json()["code"] == "day_not_over"
    api.clock.set(datetime(2022, 3, 8, 9, tzinfo=TZ))
    closed = await api.client.post("/v1/ops/settlements/2022-03-07/close", headers=api.ops("c-1"))
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed" and closed.json()["owed_fen"] == 8000
    retry = await api.client.post("/v1/ops/settlements/2022-03-07/close", headers=api.ops("c-1"))
    assert retry.json() == closed.json() and retry.headers.get("idempotent-replay") == "true"
    reader = api.token("aud", Role.AUDITOR)  # the clock moved on: a fresh token
    sheet = await api.client.get("/v1/ops/settlements/2022-03-07/csv", headers=reader)
    totals = {r["kind"]: r["owed_yuan"] for r in _rows(sheet.text) if r["kind"].startswith("day")}
    assert totals == {
        "day total owed": "80.00",
        "day total payable": "40.00",
        "day total held": "40.00",
    }
    citizen = await api.client.get("/v1/ops/settlements/2022-03-07", headers=api.token("alice"))
    assert citizen.status_code == 403


async def test_a_refund_after_closing_shows_on_the_next_open_day(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    redemption = await _sell(api, shop, "alice", 200, datetime(2022, 3, 7, 11, tzinfo=TZ))
    api.clock.set(datetime(2022, 3, 8, 9, tzinfo=TZ))
    await api.client.post("/v1/ops/settlements/2022-03-07/close", headers=api.ops("c-1"))
    api.clock.set(datetime(2022, 3, 9, 15, tzinfo=TZ))
    refund = await api.signed(
        shop,
        "POST",
        f"/v1/merchant/redemptions/{redemption}/refunds",
        {"refund_fen": 20000},
        key="f-1",
    )
    assert refund.json()["outcome"] == "restored"
    rows = _rows((await api.signed(shop, "GET", "/v1/merchant/statements/2022-03-09")).text)
    assert [(r["kind"], r["redemption_id"], r["owed_yuan"]) for r in rows] == [
        ("reversal", redemption, "-40.00"),
        ("merchant total", "", "-40.00"),
    ]
    seventh = _rows((await api.signed(shop, "GET", "/v1/merchant/statements/2022-03-07")).text)
    assert seventh[-1]["owed_yuan"] == "40.00"  # closed: paid, and stays as paid


async def test_a_bad_day_is_a_problem_naming_the_field(api: Api) -> None:
    answer = await api.client.get("/v1/ops/settlements/2022-13-01", headers=api.ops("x"))
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "day" in answer.text


async def test_rolling_over_a_round_is_refused_while_the_policy_is_disabled(api: Api) -> None:
    api.clock.set(OPENING + timedelta(days=10))
    answer = await api.client.post("/v1/ops/rounds/r5/rollover", headers=api.ops("ro-1"))
    assert answer.status_code == 409 and answer.json()["code"] == "rollover_refused"
    assert "rollover policy is disabled" in answer.json()["detail"]


async def test_a_day_that_is_not_yyyy_mm_dd_is_refused(api: Api) -> None:
    for day in ("0", "20220305", "2022-3-5"):
        answer = await api.client.get(f"/v1/ops/settlements/{day}", headers=api.ops("x"))
        assert answer.status_code == 422, (day, answer.text)
    ok = await api.client.get("/v1/ops/settlements/2022-03-05", headers=api.ops("x"))
    assert ok.status_code == 200
