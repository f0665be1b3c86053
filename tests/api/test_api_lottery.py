"""Lottery rounds and households over HTTP: the round page, registration, the operators' steps,
the published files, and a household's cap on the grab."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import spec_text
from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.api.auth.tokens import Role
from xfq.bootstrap import Container, build
from xfq.config import Settings
from xfq.domain.lottery import parse_record, parse_registration_list, verify
from xfq.spec import parse_campaign

pytestmark = pytest.mark.anyio
SPEC_TEXT = (
    spec_text.campaign("fair-api", "Fair issuance over HTTP")
    + spec_text.round_(
        "r1",
        1,
        opens_at="2022-03-05T10:00:00",
        claim_closes_at="2022-03-05T12:00:00",
        issuance="lottery",
        extra=spec_text.lottery(caps="max_wins_per_week = 1"),
    )
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 3)
    + spec_text.round_(
        "r2",
        2,
        opens_at="2022-03-06T10:00:00",
        claim_closes_at="2022-03-07T10:00:00",
        limits="per_type = 1\nper_round = 2\nper_household = 2",
    )
    + spec_text.voucher_type("r2-retail-30-6", 30, 6, 100)
    + spec_text.voucher_type("r2-home-500-80", 500, 80, 100)
)
CAMPAIGN = parse_campaign(SPEC_TEXT, "fair-api.toml")
LOTTERY = CAMPAIGN.round("r1").lottery
assert LOTTERY is not None


class Client:
    def __init__(self, client: httpx.AsyncClient, container: Container, clock: SimulatedClock):
        self.client, self.container, self.clock = client, container, clock

    def token(self, subject: str, role: Role = Role.CITIZEN, **claims: Any) -> dict[str, str]:
        assert self.container.dev_issuer is not None
        token = self.container.dev_issuer.token(subject, role, self.clock.now(), **claims)
        return {"Authorization": f"Bearer {token}"}

    def ops(self, key: str) -> dict[str, str]:
        return {**self.token("op1", Role.OPERATOR), "Idempotency-Key": key}

    async def register(self, person: str, **claims: Any) -> httpx.Response:
        headers = {**self.token(person, **claims), "Idempotency-Key": f"reg-{person}"}
        return await self.client.post(
            "/v1/lottery/r1/registrations", json={"type_id": "r1-retail-30-6"}, headers=headers
        )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Client]:
    spec = tmp_path / "fair.toml"
    spec.write_text(SPEC_TEXT, "utf-8")
    clock = SimulatedClock(LOTTERY.registration_opens_at)  # type: ignore[union-attr]
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", spec_path=spec)
    container = build(settings, clock)
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
        yield Client(client, container, clock)
    container.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_lottery_round_from_commitment_to_published_files(api: Client) -> None:
    page = (await api.client.get("/v1/lottery/r1")).json()
    assert page["seed_sha256"] is None and page["draw_file"] is None
    committed = await api.client.post("/v1/ops/lottery/r1/commit", headers=api.ops("c1"))
    assert committed.status_code == 200, committed.text
    commitment = committed.json()["seed_sha256"]
    assert len(commitment) == 64 and committed.json()["seed"] is None

    first = await api.register("p1")
    assert first.status_code == 201 and first.json()["registered"] == ["r1-retail-30-6"]
    assert (await api.register("p1")).status_code == 200  # a repeat changes nothing
    refused = await api.register("v1", residency=None)
    assert refused.status_code == 409 and refused.json()["code"] == "not_eligible"
    for n in range(2, 8):
        assert (await api.register(f"p{n}")).status_code == 201
    early = await api.client.get("/v1/lottery/r1/registrations.txt")
    assert early.status_code == 409 and early.json()["code"] == "lottery_refused"

    api.clock.set(LOTTERY.draw_at)  # type: ignore[union-attr]
    late = await api.register("p9")
    assert late.status_code == 409 and "open from" in late.json()["detail"]
    drawn = await api.client.post("/v1/ops/lottery/r1/draw", headers=api.ops("d1"))
    assert drawn.status_code == 200, drawn.text
    assert drawn.json()["winners"] == drawn.json()["issued_now"] == 3

    page = (await api.client.get("/v1/lottery/r1")).json()
    assert page["seed_sha256"] == commitment and page["winners"] == 3
    listed = await api.client.get(page["registrations_file"])
    record = parse_record((await api.client.get(page["draw_file"])).text)
    assert len(parse_registration_list(listed.content)) == 7
    assert all(
        c.ok for c in verify(record, listed.content, commitment, page["registrations_sha256"])
    )

    winners = {w.person_id for w in record.winners}
    for person in ("p1", "p2", "p3", "p4", "p5", "p6", "p7"):
        mine = (await api.client.get("/v1/lottery/r1/me", headers=api.token(person))).json()
        assert mine["won"] == (["r1-retail-30-6"] if person in winners else [])
        wallet = (await api.client.get("/v1/wallet", headers=api.token(person))).json()
        assert len(wallet["vouchers"]) == (1 if person in winners else 0)


async def test_a_grab_claim_on_a_lottery_type_is_refused(api: Client) -> None:
    api.clock.set(LOTTERY.draw_at + timedelta(minutes=1))  # type: ignore[union-attr]
    headers = {**api.token("p1"), "Idempotency-Key": "k1"}
    answer = await api.client.post(
        "/v1/claims", json={"type_id": "r1-retail-30-6"}, headers=headers
    )
    assert answer.json()["code"] == "not_eligible"


async def test_a_household_cap_holds_on_the_grab(api: Client) -> None:
    declared = await api.client.post(
        "/v1/household",
        json={"members": ["m1", "m2"]},
        headers={**api.token("head"), "Idempotency-Key": "h1"},
    )
    assert declared.status_code == 200, declared.text
    assert declared.json() == {"head_id": "head", "members": ["head", "m1", "m2"]}
    mine = await api.client.get("/v1/household", headers=api.token("m2"))
    assert mine.json()["head_id"] == "head"
    api.clock.set(CAMPAIGN.round("r2").opens_at)
    codes = []
    for person, type_id in [
        ("head", "r2-retail-30-6"),
        ("m1", "r2-home-500-80"),
        ("m2", "r2-retail-30-6"),
    ]:
        headers = {**api.token(person), "Idempotency-Key": f"{person}-{type_id}"}
        answer = await api.client.post("/v1/claims", json={"type_id": type_id}, headers=headers)
        codes.append(answer.json()["code"])
    assert codes == ["issued", "issued", "limit_reached"]
    taken = await api.client.post(
        "/v1/household",
        json={"members": ["m1"]},
        headers={**api.token("other"), "Idempotency-Key": "h2"},
    )
    assert taken.status_code == 409 and taken.json()["code"] == "household_refused"


async def test_the_dashboard_shows_the_lottery_and_its_commitment(api: Client) -> None:
    committed = await api.client.post("/v1/ops/lottery/r1/commit", headers=api.ops("c1"))
    login = await api.client.post("/ops/login", data={"subject": "op-page", "role": "operator"})
    assert login.status_code == 303
    page = (await api.client.get("/ops?lang=en")).text
    assert "Lottery · draw 2022-03-05 10:00" in page
    assert f"seed SHA-256 {committed.json()['seed_sha256']}" in page
    assert "Per household 2" in page


async def test_registering_for_a_category_enters_each_of_its_types(api: Client) -> None:
    headers = {**api.token("p1"), "Idempotency-Key": "c1"}
    path = "/v1/lottery/r1/registrations"
    by_category = await api.client.post(path, json={"category": "retail"}, headers=headers)
    assert by_category.status_code == 201 and by_category.json()["registered"] == ["r1-retail-30-6"]
    again = await api.client.post(path, json={"category": "retail"}, headers=headers)
    assert again.status_code == 200
    none = await api.client.post(path, json={"category": "home"}, headers=headers)
    assert none.status_code == 404
    both = await api.client.post(
        path, json={"category": "retail", "type_id": "r1-retail-30-6"}, headers=headers
    )
    assert both.status_code == 422
