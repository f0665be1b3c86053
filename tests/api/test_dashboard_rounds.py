"""The operators' dashboard page can open a round early and stop its claims."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import OPENING, Api

pytestmark = pytest.mark.anyio


async def test_the_dashboard_opens_a_round_now_and_stops_it(api: Api) -> None:
    api.clock.set(OPENING - timedelta(minutes=10))
    login = await api.client.post("/ops/login", data={"subject": "op-page", "role": "operator"})
    assert login.status_code == 303
    page = await api.client.get("/ops")
    assert 'data-round-state="r6">未开始' in page.text and "/ops/rounds/r6/open" in page.text

    opened = await api.client.post("/ops/rounds/r6/open")
    assert opened.status_code == 303
    assert (await api.claim("alice", "r6-retail-30-6")).status_code == 201
    page = await api.client.get("/ops")
    assert 'data-round-state="r6">正在抢券' in page.text

    stopped = await api.client.post("/ops/rounds/r6/cancel")
    assert stopped.status_code == 303
    assert (await api.claim("bob", "r6-retail-30-6")).json()["code"] == "closed"
    page = await api.client.get("/ops?lang=en")
    assert 'data-round-state="r6">' in page.text and "/ops/rounds/r6/cancel" not in page.text


async def test_a_citizen_cannot_move_a_round_from_the_page(api: Api) -> None:
    api.clock.set(OPENING - timedelta(minutes=10))
    refused = await api.client.post("/ops/rounds/r6/open")
    assert refused.status_code == 303  # back to the sign-in page, nothing moved
    assert (await api.claim("alice", "r6-retail-30-6")).json()["code"] == "not_open"
