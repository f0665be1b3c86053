"""`POST /v1/claims` served by the Redis engine through the app, as `xfq serve --redis` runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLE, OPENING, Api, persisted

from servers.redis_fixtures import redis_server, redis_server_session  # noqa: F401
from servers.redis_servers import RedisServer
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.redis.engine import RedisClaimEngine
from xfq.api.app import create_app
from xfq.bootstrap import Container, build
from xfq.config import Settings

pytestmark = pytest.mark.anyio
SCARCE = "r6-retail-180-40"


@pytest.fixture
def redis_container(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> Iterator[tuple[Container, SimulatedClock]]:
    clock = SimulatedClock(OPENING - timedelta(minutes=5))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        spec_path=EXAMPLE,
        redis_url=redis_server.url,
        claim_burst_per_address=100_000,
        # exact answer counts: no claim shed while the first one connects on a loaded machine
        claim_max_wait_ms=30_000,
    )
    built = build(settings, clock)
    yield built, clock
    built.close()


@pytest.fixture
async def api(redis_container: tuple[Container, SimulatedClock]) -> AsyncIterator[Api]:
    built, clock = redis_container
    transport = httpx.ASGITransport(app=create_app(built))
    async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
        yield Api(client, built, clock)


async def test_claims_over_http_are_issued_by_redis_and_reach_the_ledger(api: Api) -> None:
    api.clock.set(OPENING + timedelta(seconds=1))
    first = await api.claim("alice", SCARCE, key="tap-1")
    retry = await api.claim("alice", SCARCE, key="tap-1")
    again = await api.claim("alice", SCARCE, key="tap-2")

    assert first.status_code == 201, first.text
    assert retry.json()["voucher"]["id"] == first.json()["voucher"]["id"]
    assert again.json()["code"] == "limit_reached"
    assert persisted(api, 1) == 1
    wallet = (await api.client.get("/v1/wallet", headers=api.token("alice"))).json()
    assert [v["id"] for v in wallet["vouchers"]] == [first.json()["voucher"]["id"]]


async def test_the_last_vouchers_over_http_are_never_oversold(api: Api) -> None:
    api.clock.set(OPENING + timedelta(seconds=1))
    _campaign, engine = api.container.running()
    assert isinstance(engine, RedisClaimEngine)
    engine.redis.set(engine.layout.stock(0, SCARCE), 5)  # the rest went before

    answers = await asyncio.gather(*(api.claim(f"p-{n}", SCARCE) for n in range(60)))

    codes = Counter(a.json()["code"] for a in answers)
    assert codes == {"issued": 5, "sold_out": 55}, codes
    assert persisted(api, 5) == 5
    assert engine.remaining(SCARCE) == 0


async def test_an_operators_window_change_reaches_redis(api: Api) -> None:
    api.clock.set(OPENING - timedelta(minutes=3))
    assert (await api.claim("alice", SCARCE)).json()["code"] == "not_open"
    opened = await api.client.post("/v1/ops/rounds/r6/open", headers=api.ops("open-1"))
    assert opened.status_code == 200, opened.text
    assert (await api.claim("alice", SCARCE, key="k2")).status_code == 201
    cancelled = await api.client.post("/v1/ops/rounds/r6/cancel", headers=api.ops("cancel-1"))
    assert cancelled.status_code == 200
    assert (await api.claim("bob", SCARCE)).json()["code"] == "closed"


async def test_a_claim_pass_claims_through_redis_as_a_bearer_token_does(api: Api) -> None:
    got = await api.client.post("/v1/rounds/r6/pass", headers=api.token("carol"))
    assert got.status_code == 200, got.text
    api.clock.set(OPENING + timedelta(seconds=1))
    headers = {"Claim-Pass": got.json()["token"], "Idempotency-Key": "tap-1"}
    first = await api.client.post("/v1/claims", json={"type_id": SCARCE}, headers=headers)
    retry = await api.claim("carol", SCARCE, key="tap-1")  # the same key, by bearer token
    headers["Idempotency-Key"] = "tap-2"
    again = await api.client.post("/v1/claims", json={"type_id": SCARCE}, headers=headers)

    assert first.status_code == 201, first.text
    assert retry.json()["voucher"]["id"] == first.json()["voucher"]["id"]
    assert again.json()["code"] == "limit_reached"
    assert persisted(api, 1) == 1
    headers["Claim-Pass"] += "x"
    forged = await api.client.post("/v1/claims", json={"type_id": SCARCE}, headers=headers)
    assert forged.status_code == 401 and forged.json()["code"] == "pass_forged"
