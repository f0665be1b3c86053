"""The grab's rate limits over HTTP: a person past their burst waits; sold out and not yet open
never wait."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bench_api import OPENING, bench_api
from xfq.adapters.clock import SimulatedClock
from xfq.api.auth.tokens import Role
from xfq.bootstrap import Container

pytestmark = pytest.mark.anyio
BURST = 2  # claims a person may send at once; then one a second


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    limits = {"claim_rate_per_person_per_s": 1.0, "claim_burst_per_person": BURST}
    async with bench_api(tmp_path, **limits) as (front, client):  # the clock stands still
        yield front.container, client


async def _claim(
    api: tuple[Container, httpx.AsyncClient], person: str, type_id: str, key: str
) -> httpx.Response:
    container, client = api
    assert container.dev_issuer is not None
    token = container.dev_issuer.token(person, Role.CITIZEN, container.clock.now())
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    return await client.post("/v1/claims", json={"type_id": type_id}, headers=headers)


async def test_a_person_past_their_burst_is_told_to_wait(
    api: tuple[Container, httpx.AsyncClient],
) -> None:
    answers = [await _claim(api, "p1", "plenty", f"k{n}") for n in range(BURST + 1)]
    assert [a.json()["code"] for a in answers] == ["issued", "limit_reached", "rate_limited"]
    refused = answers[-1]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    # someone else is not held back by p1's limit
    assert (await _claim(api, "p2", "plenty", "k0")).json()["code"] == "issued"


async def test_sold_out_answers_take_nothing_from_a_persons_limit(
    api: tuple[Container, httpx.AsyncClient],
) -> None:
    assert (await _claim(api, "first", "one", "k0")).json()["code"] == "issued"
    repeats = [await _claim(api, "late", "one", f"k{n}") for n in range(5 * BURST)]
    assert {(a.status_code, a.json()["code"]) for a in repeats} == {(200, "sold_out")}
    # the sold-out answers took none of late's burst: their next claim is decided
    assert (await _claim(api, "late", "plenty", "k-plenty")).json()["code"] == "issued"


async def test_an_invalid_claim_is_refused_for_what_is_wrong_not_for_the_rate(
    api: tuple[Container, httpx.AsyncClient],
) -> None:
    for n in range(BURST):
        await _claim(api, "p1", "plenty", f"k{n}")
    bad_key = await _claim(api, "p1", "plenty", "not a key!")
    assert bad_key.status_code == 422
    assert "Idempotency-Key" in bad_key.json()["detail"]


async def test_not_open_answers_take_nothing_from_a_persons_limit(
    api: tuple[Container, httpx.AsyncClient],
) -> None:
    container, _ = api
    clock = container.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(OPENING - timedelta(minutes=1))  # people press before 10:00
    early = [await _claim(api, "eager", "plenty", f"k{n}") for n in range(5 * BURST)]
    assert {(a.status_code, a.json()["code"]) for a in early} == {(200, "not_open")}
    clock.set(OPENING)
    # none of eager's burst went on the early presses: their claim at the opening is decided
    assert (await _claim(api, "eager", "plenty", "k-open")).json()["code"] == "issued"
