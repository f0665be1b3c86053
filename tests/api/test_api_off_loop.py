"""Requests read the ledger off the event loop: one stuck on the ledger (as on a cut PostgreSQL
link) holds up no other request of the process, and the ledger's threads, each with a reader
connection of its own, stay as many as XFQ_LEDGER_THREADS says.

`tests/faults/test_serving_recovers.py` shows the same against real servers and a cut link."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import EXAMPLE, OPENING, Api, Till

from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.api.auth.tokens import Role
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.ports import LedgerReader

pytestmark = pytest.mark.anyio
RETAIL = "r6-retail-180-40"
STUCK_S = 10.0  # a stuck read's longest wait: on the event loop it would have held up the test


@dataclass(frozen=True)
class Redeemed:
    till: Till
    voucher_id: str
    code: str
    redemption_id: str


async def _redeemed(api: Api) -> Redeemed:
    """Alice's voucher, its till code, and its redemption at an approved shop."""
    till = await api.enroll("shop", "retail")
    api.clock.set(OPENING)
    voucher_id = (await api.claim("alice", RETAIL)).json()["voucher"]["id"]
    code = await api.till_code("alice", voucher_id)
    order = {"list_price_fen": 20000}
    body = {"code": code, "order_ref": "o-1", "order": order}
    redeemed = await api.signed(till, "POST", "/v1/merchant/redemptions", body, key="r-1")
    assert redeemed.status_code == 201, redeemed.text
    return Redeemed(till, voucher_id, code, redeemed.json()["redemption"]["id"])


Read = Callable[[Api, Redeemed], Coroutine[Any, Any, httpx.Response]]
READS: dict[str, Read] = {
    "wallet": lambda api, r: api.client.get("/v1/wallet", headers=api.token("alice")),
    "till code": lambda api, r: api.client.post(
        f"/v1/vouchers/{r.voucher_id}/till-code?qr=false", headers=api.token("alice")
    ),
    "quote": lambda api, r: api.signed(
        r.till, "POST", "/v1/merchant/quotes", {"code": r.code, "order": {"list_price_fen": 9}}
    ),
    "redemption": lambda api, r: api.signed(
        r.till, "GET", f"/v1/merchant/redemptions/{r.redemption_id}"
    ),
    "merchant keys": lambda api, r: api.client.get(
        "/v1/ops/merchants/shop/keys", headers=api.token("op1", Role.OPERATOR)
    ),
}


class StuckReader:
    """Stands in for `SqlLedger.reader`: each call waits until released (at most `STUCK_S`),
    then hands out the real reader; counts the calls waiting at once."""

    def __init__(self, real: Callable[[], LedgerReader]) -> None:
        self._real = real
        self._lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self) -> LedgerReader:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.set()
        self.released.wait(STUCK_S)
        with self._lock:
            self.inside -= 1
        return self._real()

    async def wait_inside(self, count: int) -> None:
        """Until `count` calls wait at once (bounded)."""
        for _ in range(int(STUCK_S / 0.01)):
            if self.inside >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{self.inside} reads waiting, not {count}")


@pytest.mark.parametrize("read", READS)
async def test_a_claim_is_answered_while_a_read_waits_on_the_ledger(
    api: Api, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    redeemed = await _redeemed(api)
    stuck = StuckReader(api.container.ledger.reader)
    monkeypatch.setattr(api.container.ledger, "reader", stuck)
    waiting = asyncio.create_task(READS[read](api, redeemed))
    try:
        assert await asyncio.to_thread(stuck.entered.wait, STUCK_S)
        claimed = await api.claim("bob", RETAIL)
        assert not waiting.done()  # the claim did not wait behind the read
    finally:
        stuck.released.set()
    assert claimed.status_code == 201, claimed.text
    answer = await waiting
    assert answer.status_code == 200, answer.text


async def test_reads_queue_for_the_ledger_threads_and_keep_one_connection_each(
    ledger_url: str,
) -> None:
    clock = SimulatedClock(OPENING)
    settings = Settings(
        database_url=ledger_url, spec_path=EXAMPLE, ledger_threads=2, ledger_wait_s=60
    )
    container = build(settings, clock)
    try:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
            api = Api(client, container, clock)
            stuck = StuckReader(container.ledger.reader)
            container.ledger.reader = stuck  # type: ignore[method-assign]
            wallets = [
                asyncio.create_task(client.get("/v1/wallet", headers=api.token(f"p{n}")))
                for n in range(20)
            ]
            await stuck.wait_inside(2)
            claimed = await api.claim("bob", RETAIL)  # the loop answers while all 20 wait
            stuck.released.set()
            answers = await asyncio.gather(*wallets)
        assert claimed.status_code == 201, claimed.text
        assert [a.status_code for a in answers] == [200] * 20
        assert stuck.most_inside == 2
        # Two readers (one per ledger thread) and the writer's connection, nothing more
        assert container.ledger.engine.pool.checkedout() <= 3  # type: ignore[attr-defined]
    finally:
        container.close()
