"""The operators' side: campaign import, merchant enrollment, stats; citizens are kept out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import EXAMPLE, ON_BOTH_LEDGERS, OPENING, Api

from xfq.adapters.clock import SimulatedClock
from xfq.api.auth.tokens import Role
from xfq.bootstrap import Container, build

pytestmark = [pytest.mark.anyio, ON_BOTH_LEDGERS]


async def test_a_broken_campaign_file_is_refused_with_its_line_and_nothing_changes(
    api: Api,
) -> None:
    text = EXAMPLE.read_text().replace("count = 23250", "count = 0", 1)
    line = 1 + text[: text.index("count = 0")].count("\n")
    answer = await api.client.put("/v1/ops/campaign", json={"toml": text}, headers=api.ops("imp-1"))
    assert answer.status_code == 422
    assert any(f":{line}:" in p for p in answer.json()["problems"])
    campaign = (await api.client.get("/v1/campaign")).json()
    r6 = next(r for r in campaign["rounds"] if r["id"] == "r6")
    assert sum(t["count"] for t in r6["types"]) == 126_700


async def test_operator_routes_refuse_citizens_and_anonymous_callers(api: Api) -> None:
    body = {"id": "shop", "name": "Shop", "category": "retail"}
    anonymous = await api.client.post("/v1/ops/merchants", json=body)
    assert anonymous.status_code == 401
    as_citizen = {**api.token("alice"), "Idempotency-Key": "k"}
    citizen = await api.client.post("/v1/ops/merchants", json=body, headers=as_citizen)
    assert citizen.status_code == 403
    auditor = api.token("aud", Role.AUDITOR)
    assert (await api.client.get("/v1/ops/merchants", headers=auditor)).status_code == 200
    assert (
        await api.client.post(
            "/v1/ops/merchants", json=body, headers={**auditor, "Idempotency-Key": "k"}
        )
    ).status_code == 403


async def test_enrollment_checks_the_category_and_approval_issues_a_key(api: Api) -> None:
    ops = api.token("op1", Role.OPERATOR)
    bad = await api.client.post(
        "/v1/ops/merchants", json={"id": "x", "name": "X", "category": "toys"}, headers=api.ops("t")
    )
    assert bad.status_code == 404 and "toys" in bad.json()["detail"]
    till = await api.enroll("shop", "retail")
    assert till.key_id.startswith("mk_") and len(till.secret) >= 32
    listed = (await api.client.get("/v1/ops/merchants", headers=ops)).json()
    assert listed == [
        {"id": "shop", "name": "shop shop", "category": "retail", "status": "enrolled"}
    ]
    again = await api.client.post(
        "/v1/ops/merchants",
        json={"id": "shop", "name": "Shop", "category": "retail"},
        headers=api.ops("a-new-key"),
    )
    assert again.status_code == 409  # already enrolled: a new key does not enroll it twice


async def test_stats_show_stock_and_answers_during_the_grab(api: Api) -> None:
    api.clock.set(OPENING)
    await api.claim("alice", "r6-home-2000-300")
    await api.claim("alice", "r6-home-500-80", key="second")
    stats = (await api.client.get("/v1/ops/stats", headers=api.token("op1", Role.OPERATOR))).json()
    assert stats["remaining"]["r6-home-2000-300"] == 1_979
    assert stats["answers_by_code"] == {"issued": 1, "limit_reached": 1}


async def test_unknown_routes_answer_problem_json(api: Api) -> None:
    answer = await api.client.get("/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_a_retried_approval_shows_the_same_key_and_issues_no_second_one(api: Api) -> None:
    body = {"id": "shop", "name": "Shop", "category": "retail"}
    assert (
        await api.client.post("/v1/ops/merchants", json=body, headers=api.ops("e1"))
    ).status_code == 201
    first = await api.client.post("/v1/ops/merchants/shop/approve", headers=api.ops("a1"))
    again = await api.client.post("/v1/ops/merchants/shop/approve", headers=api.ops("a1"))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replay"] == "true"
    assert len(api.container.merchant_keys) == 1
    other = {"id": "shop2", "name": "Shop 2", "category": "retail"}
    reused = await api.client.post("/v1/ops/merchants", json=other, headers=api.ops("e1"))
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_conflict"
    missing = await api.client.post(
        "/v1/ops/merchants", json=other, headers=api.token("op1", Role.OPERATOR)
    )
    assert missing.status_code == 422 and "Idempotency-Key" in missing.json()["detail"]


async def test_an_operator_can_open_a_round_early_and_cancel_it(api: Api) -> None:
    api.clock.set(OPENING - timedelta(minutes=3))
    assert (await api.claim("alice", "r6-retail-30-6")).json()["code"] == "not_open"
    opened = await api.client.post("/v1/ops/rounds/r6/open", headers=api.ops("open-1"))
    assert opened.status_code == 200, opened.text
    assert (await api.claim("alice", "r6-retail-30-6", key="k2")).status_code == 201
    cancelled = await api.client.post("/v1/ops/rounds/r6/cancel", headers=api.ops("cancel-1"))
    assert cancelled.status_code == 200
    late = await api.claim("bob", "r6-retail-30-6")
    assert late.json()["code"] == "closed"
    again = await api.client.post("/v1/ops/rounds/r6/cancel", headers=api.ops("cancel-2"))
    assert again.status_code == 409 and "closed" in again.json()["detail"]
    wallet = (await api.client.get("/v1/wallet", headers=api.token("alice"))).json()
    assert len(wallet["vouchers"]) == 1  # what was issued stays
    citizen = await api.client.post(
        "/v1/ops/rounds/r6/open", headers={**api.token("alice"), "Idempotency-Key": "x"}
    )
    assert citizen.status_code == 403


async def test_a_cancelled_round_stays_cancelled_after_a_restart(
    api: Api, container: tuple[Container, SimulatedClock]
) -> None:
    api.clock.set(OPENING + timedelta(minutes=1))
    assert (
        await api.client.post("/v1/ops/rounds/r6/cancel", headers=api.ops("c"))
    ).status_code == 200
    built, clock = container
    built.close()
    restarted = build(built.settings, clock)
    try:
        campaign, _ = restarted.running()
        assert campaign.round("r6").claim_closes_at == OPENING + timedelta(minutes=1)
    finally:
        restarted.close()
