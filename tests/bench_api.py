"""The API in process on the benchmarks' campaign (a type of plenty, a type of one voucher),
on a SQLite ledger, with the clock standing still one second after the opening."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.api.claiming import ClaimFront
from xfq.bootstrap import build
from xfq.config import Settings

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench-campaign.toml"
OPENING = datetime(2022, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@asynccontextmanager
async def bench_api(
    tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[ClaimFront, httpx.AsyncClient]]:
    """The claim front (`front.container` is its container) and a client of the whole app."""
    everything: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        "spec_path": BENCH,
        "claim_rate_per_address_per_s": 1e6,  # every test client shares one address
        "claim_burst_per_address": 1_000_000,
    }
    clock = SimulatedClock(OPENING + timedelta(seconds=1))
    container = build(Settings(**(everything | settings)), clock)
    asgi = create_app(container)
    transport = httpx.ASGITransport(app=asgi)
    app = asgi
    assert isinstance(app, ClaimFront)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
            yield app, client
    finally:
        container.close()
