"""The development clock endpoints: read the server's time; set it only when it stands still."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import EXAMPLE, OPENING

from xfq.api.app import create_app
from xfq.bootstrap import build
from xfq.config import Settings

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _serve(tmp_path: Path, **clock: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'l.db'}", spec_path=EXAMPLE, **clock)
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
            yield client
    finally:
        container.close()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, datetime]]:
    anchor = datetime.now(UTC)
    async with _serve(tmp_path, simulated_start=OPENING, simulated_anchor=anchor) as client:
        yield client, anchor


async def _read_between(client: httpx.AsyncClient, anchor: datetime) -> datetime:
    """The server's time, checked against OPENING + the real time elapsed since the anchor."""
    before = OPENING + (datetime.now(UTC) - anchor)
    answer = await client.get("/dev/clock")
    after = OPENING + (datetime.now(UTC) - anchor)
    assert answer.status_code == 200, answer.text
    read = datetime.fromisoformat(answer.json()["now"])
    assert before <= read <= after
    return read


async def test_a_running_clock_reads_real_time_since_its_anchor(
    running: tuple[httpx.AsyncClient, datetime],
) -> None:
    client, anchor = running
    first = await _read_between(client, anchor)
    assert await _read_between(client, anchor) >= first


async def test_a_running_clock_cannot_be_set_and_says_why(
    running: tuple[httpx.AsyncClient, datetime],
) -> None:
    client, anchor = running
    moved = await client.put("/dev/clock", json={"now": "2022-03-11T23:59:59+08:00"})
    assert moved.status_code == 409
    assert moved.headers["content-type"] == "application/problem+json"
    assert moved.json()["code"] == "clock_not_settable"
    assert "XFQ_SIMULATED_ANCHOR" in moved.json()["detail"]
    await _read_between(client, anchor)  # not moved


async def test_a_standing_clock_is_set_and_read(tmp_path: Path) -> None:
    async with _serve(tmp_path, simulated_start=OPENING) as client:
        assert (await client.get("/dev/clock")).json()["now"] == OPENING.isoformat()
        later = (OPENING + timedelta(days=1)).isoformat()
        assert (await client.put("/dev/clock", json={"now": later})).json()["now"] == later
        assert (await client.get("/dev/clock")).json()["now"] == later


async def test_real_time_cannot_be_set(tmp_path: Path) -> None:
    async with _serve(tmp_path) as client:
        moved = await client.put("/dev/clock", json={"now": OPENING.isoformat()})
        assert (moved.status_code, moved.json()["code"]) == (409, "clock_not_settable")
