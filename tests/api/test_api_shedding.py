"""Admission control at the claim front, in process: what is shed, what never is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bench_api import OPENING, bench_api
from xfq.adapters.clock import SimulatedClock
from xfq.api.admission import Ticket
from xfq.api.app import create_app
from xfq.api.auth.tokens import Role
from xfq.api.claiming import ClaimFront
from xfq.bootstrap import Container, build
from xfq.config import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[tuple[ClaimFront, httpx.AsyncClient]]:
    async with bench_api(tmp_path, claim_max_in_flight=1) as (app, client):
        yield app, client


def _headers(container: Container, person: str) -> dict[str, str]:
    assert container.dev_issuer is not None
    token = container.dev_issuer.token(person, Role.CITIZEN, container.clock.now())
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": f"k-{person}"}


async def _claim(
    front: tuple[ClaimFront, httpx.AsyncClient], person: str, type_id: str
) -> httpx.Response:
    app, client = front
    headers = _headers(app.container, person)
    return await client.post("/v1/claims", json={"type_id": type_id}, headers=headers)


async def test_claims_past_the_bound_get_429_with_retry_after_and_the_rest_are_issued(
    front: tuple[ClaimFront, httpx.AsyncClient],
) -> None:
    answers = await asyncio.gather(*(_claim(front, f"p{n}", "plenty") for n in range(40)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {201, 429} and 201 in statuses and 429 in statuses
    for shed in (a for a in answers if a.status_code == 429):
        assert shed.headers["content-type"] == "application/problem+json"
        assert shed.json()["code"] == "overloaded" and int(shed.headers["retry-after"]) >= 1
    app, _ = front
    issued = statuses.count(201)
    assert app.container.engine is not None
    assert app.container.engine.remaining("plenty") == 50_000_000 - issued
    assert app.admission.in_flight == 0
    metrics = (await front[1].get("/metrics")).text
    assert f'xfq_claims_shed_total{{reason="in_flight"}} {40.0 - issued}' in metrics


async def test_a_sold_out_type_is_answered_from_memory_even_when_the_server_is_full(
    front: tuple[ClaimFront, httpx.AsyncClient],
) -> None:
    app, _ = front
    assert (await _claim(front, "first", "one")).status_code == 201
    held = app.admission.enter(0.0)  # the one place in flight is taken
    assert isinstance(held, Ticket)
    sold_out = await _claim(front, "second", "one")
    assert sold_out.status_code == 200 and sold_out.json()["code"] == "sold_out"
    shed = await _claim(front, "third", "plenty")
    assert shed.status_code == 429 and shed.json()["code"] == "overloaded"
    app.admission.leave(held)
    assert (await _claim(front, "third", "plenty")).status_code == 201


async def test_presses_before_the_opening_are_answered_from_memory_even_when_the_server_is_full(
    front: tuple[ClaimFront, httpx.AsyncClient],
) -> None:
    app, _ = front
    clock = app.container.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(OPENING - timedelta(seconds=1))
    held = app.admission.enter(0.0)  # the one place in flight is taken
    assert isinstance(held, Ticket)
    early = await _claim(front, "eager", "plenty")
    assert early.status_code == 200 and early.json()["code"] == "not_open"
    clock.set(OPENING)
    shed = await _claim(front, "eager", "plenty")
    assert shed.status_code == 429 and shed.json()["code"] == "overloaded"
    app.admission.leave(held)


async def test_a_claim_before_any_campaign_is_loaded_is_a_409_problem(tmp_path: Path) -> None:
    container = build(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    transport = httpx.ASGITransport(app=create_app(container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
            answer = await client.post(
                "/v1/claims", json={"type_id": "plenty"}, headers=_headers(container, "early")
            )
    finally:
        container.close()
    assert answer.status_code == 409 and answer.json()["code"] == "no_campaign"
    assert answer.headers["content-type"] == "application/problem+json"
