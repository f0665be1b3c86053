"""The benchmark's conventional design (benchmarks/conventional_pg.py) answers as xfq does and
never oversells, so that comparing with it is fair."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

import spec_text
from xfq.spec import parse_campaign

BASELINE = Path(__file__).parents[2] / "benchmarks" / "conventional_pg.py"
SPEC_TEXT = (
    spec_text.campaign("baseline", "Baseline")
    + spec_text.round_()
    + spec_text.voucher_type("r1-home-500-80", 500, 80, 60)
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 1000)
)
TYPE = "r1-home-500-80"  # 60 of them, one per person


def baseline() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conventional_pg", BASELINE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["conventional_pg"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.anyio
async def test_one_transaction_per_claim_sells_out_exactly_and_keeps_limits(
    postgres_url: str,
) -> None:
    conv, campaign = baseline(), parse_campaign(SPEC_TEXT, "baseline.toml")
    conv.setup(postgres_url, campaign)
    limits = conv.Limits(campaign)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(postgres_url, min_size=8, max_size=8)
    async with pool:

        async def claim(person: str, key: str) -> str:
            _status, body = await conv.decide(pool, limits, person, TYPE, key)
            code: str = body["code"]
            return code

        first = await claim("alice", "k1")
        retry = await claim("alice", "k1")
        again = await claim("alice", "k2")
        codes = Counter(
            await asyncio.gather(*(claim(f"p-{n % 100}", f"k-{n}") for n in range(200)))
        )
    assert (first, retry, again) == ("issued", "issued", "limit_reached")
    assert codes["issued"] == 59  # with alice's: all 60, not one more
    assert codes["sold_out"] + codes["limit_reached"] == 200 - 59 and codes["sold_out"] > 0
    assert conv.check(postgres_url, campaign) == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
