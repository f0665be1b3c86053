"""The assisted channel over HTTP: staff claim from a type's reserve after an ID check, print it
on paper, and a till accepts the paper code long after a phone's code would have expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import Api

import spec_text
from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.api.auth.tokens import Role
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.spec import parse_campaign

pytestmark = pytest.mark.anyio
TYPE = "r1-retail-30-6"
SPEC_TEXT = (
    spec_text.campaign("desk", "Assisted channel")
    + spec_text.round_()
    + spec_text.voucher_type(TYPE, 30, 6, 3)
    + "assisted = 1\n"
)
OPENS_AT = parse_campaign(SPEC_TEXT, "desk.toml").round("r1").opens_at


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    spec = tmp_path / "desk.toml"
    spec.write_text(SPEC_TEXT, "utf-8")
    clock = SimulatedClock(OPENS_AT)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", spec_path=spec)
    container = build(settings, clock)
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
        yield Api(client, container, clock)
    container.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def desk_claim(person: str, id_checked: bool = True) -> dict[str, object]:
    return {
        "person_id": person,
        "type_id": TYPE,
        "residency": "permanent",
        "id_checked": id_checked,
    }


async def test_the_reserve_is_kept_for_the_desk_and_its_paper_voucher_pays(api: Api) -> None:
    codes = [(await api.claim(f"p{n}", TYPE)).json()["code"] for n in range(3)]
    assert codes == ["issued", "issued", "sold_out"]  # the app gets 2 of 3: one is reserved

    staff = {**api.token("desk-1", Role.DESK), "Idempotency-Key": "d1"}
    unchecked = await api.client.post(
        "/v1/desk/claims", json=desk_claim("granny", False), headers=staff
    )
    assert unchecked.status_code == 409
    claimed = await api.client.post("/v1/desk/claims", json=desk_claim("granny"), headers=staff)
    assert claimed.status_code == 201, claimed.text
    again = await api.client.post("/v1/desk/claims", json=desk_claim("granny"), headers=staff)
    assert again.json()["voucher"]["id"] == claimed.json()["voucher"]["id"]  # a retry, no second
    other = {**staff, "Idempotency-Key": "d2"}
    assert (
        await api.client.post("/v1/desk/claims", json=desk_claim("gramps"), headers=other)
    ).json()["code"] == "sold_out"
    citizen = await api.client.post("/v1/desk/claims", json=desk_claim("x"), headers=api.token("x"))
    assert citizen.status_code == 403

    voucher_id = claimed.json()["voucher"]["id"]
    paper = await api.client.post(
        f"/v1/desk/vouchers/{voucher_id}/paper", json={"person_id": "granny"}, headers=staff
    )
    assert paper.status_code == 200, paper.text
    assert paper.json()["qr_svg"].startswith("<svg")
    wrong = await api.client.post(
        f"/v1/desk/vouchers/{voucher_id}/paper", json={"person_id": "p0"}, headers=staff
    )
    assert wrong.status_code == 404

    till = await api.enroll("shop", "retail")
    api.clock.advance(timedelta(days=2))  # a phone's till code lives 90 seconds
    order = {"list_price_fen": 3000, "merchant_promotion_fen": 0}
    body = {"code": paper.json()["code"], "order_ref": "o-1", "order": order}
    redeemed = await api.signed(till, "POST", "/v1/merchant/redemptions", body, key="r-1")
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["redemption"]["voucher_id"] == voucher_id
    twice = await api.signed(
        till, "POST", "/v1/merchant/redemptions", {**body, "order_ref": "o-2"}, key="r-2"
    )
    assert twice.json()["code"] == "already_redeemed"  # the paper is used up with its voucher
