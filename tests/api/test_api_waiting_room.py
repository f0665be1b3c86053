"""A grab round behind a waiting room over HTTP: claims need an admission token, used once."""

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
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.spec import parse_campaign

pytestmark = pytest.mark.anyio
TYPE = "r1-retail-30-6"
ROOM = (
    "\n[rounds.waiting_room]\nopens_before_minutes = 10\nadmit_per_second = 2\n"
    "token_ttl_seconds = 30\n"
)
SPEC_TEXT = (
    spec_text.campaign("room", "Waiting room")
    + spec_text.round_(extra=ROOM)
    + spec_text.voucher_type(TYPE, 30, 6, 100)
)
OPENS_AT = parse_campaign(SPEC_TEXT, "room.toml").round("r1").opens_at


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    spec = tmp_path / "room.toml"
    spec.write_text(SPEC_TEXT, "utf-8")
    clock = SimulatedClock(OPENS_AT - timedelta(minutes=5))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", spec_path=spec)
    container = build(settings, clock)
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
        yield Api(client, container, clock)
    container.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def claim(api: Api, person: str, key: str, token: str | None) -> httpx.Response:
    headers = {**api.token(person), "Idempotency-Key": key}
    if token is not None:
        headers["Admission"] = token
    return await api.client.post("/v1/claims", json={"type_id": TYPE}, headers=headers)


async def test_claims_pass_the_room_once_per_token(api: Api) -> None:
    people = [f"p{n}" for n in range(5)]
    for person in people:
        joined = await api.client.post("/v1/rounds/r1/waiting-room", headers=api.token(person))
        assert joined.status_code == 200 and joined.json()["place"] is None
    api.clock.set(OPENS_AT)
    standings = {
        p: (await api.client.get("/v1/rounds/r1/waiting-room", headers=api.token(p))).json()
        for p in people
    }
    assert sorted(s["place"] for s in standings.values()) == [1, 2, 3, 4, 5]
    admitted = [p for p, s in standings.items() if s["admitted"]]
    waiting = [p for p, s in standings.items() if not s["admitted"]]
    assert len(admitted) == 2 and all(standings[p]["token"] is None for p in waiting)

    first, second = admitted
    token = standings[first]["token"]
    without = await claim(api, first, "k0", None)
    assert without.status_code == 403 and without.json()["code"] == "admission_malformed"
    stolen = await claim(api, waiting[0], "k1", token)
    assert stolen.status_code == 403 and stolen.json()["code"] == "admission_not_yours"
    forged = await claim(api, first, "k2", token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    assert forged.status_code == 403 and forged.json()["code"] == "admission_forged"
    issued = await claim(api, first, "k3", token)
    assert issued.status_code == 201, issued.text
    reused = await claim(api, first, "k4", token)
    assert reused.status_code == 403 and reused.json()["code"] == "admission_used"

    api.clock.advance(timedelta(seconds=40))
    late = await claim(api, second, "k5", standings[second]["token"])
    assert late.status_code == 403 and late.json()["code"] == "admission_expired"
    fresh = (await api.client.get("/v1/rounds/r1/waiting-room", headers=api.token(second))).json()
    assert (await claim(api, second, "k6", fresh["token"])).status_code == 201
