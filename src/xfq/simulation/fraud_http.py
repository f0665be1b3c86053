"""The demo's planted cash-out fraud played over HTTP: colluding tills ring up their rings'
vouchers through the merchants' API, as they would in a real city (see `simulation.fraud`)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from xfq.simulation.fraud import (
    CYCLES,
    REDEEM_EVERY,
    REFUND_AFTER,
    FraudTruth,
    Holding,
    fake_order,
    ring_start,
)
from xfq.simulation.over_http import Driver, Till


@dataclass(frozen=True)
class _Step:
    at: datetime
    refund: bool
    merchant_id: str
    holding: Holding
    cycle: int


def _steps(
    driver: Driver, rings: dict[str, list[Holding]], truth: FraudTruth, rng: random.Random
) -> list[_Step]:
    steps = []
    for merchant_id, ring in sorted(rings.items()):
        schemes = truth.colluders[merchant_id]
        cycles = CYCLES if "cycle" in schemes else 0
        for h in ring:
            rnd = driver.campaign.voucher_type(h.type_id)[0]
            start = ring_start(driver.campaign, schemes, rnd.id, rng)
            for cycle in range(cycles + 1):
                at = start + cycle * REDEEM_EVERY
                steps.append(_Step(at, False, merchant_id, h, cycle))
                if cycle < cycles:
                    steps.append(_Step(at + REFUND_AFTER, True, merchant_id, h, cycle))
    return sorted(steps, key=lambda s: (s.at, s.refund))


async def play_rings_over_http(
    driver: Driver,
    tills: dict[str, Till],
    rings: dict[str, list[Holding]],
    truth: FraudTruth,
    rng: random.Random,
) -> None:
    """Every ring step at its moment on the server's clock; steps of one moment run together."""
    redeemed: dict[tuple[str, int], tuple[str, int]] = {}  # (voucher, cycle) -> (id, base fen)
    dropped: set[str] = set()  # vouchers the till could not use (e.g. not yet valid)

    async def redeem(step: _Step) -> None:
        h, till = step.holding, tills[step.merchant_id]
        vtype = driver.campaign.voucher_type(h.type_id)[1]
        order = fake_order(vtype, truth.colluders[step.merchant_id], rng)
        path = f"/v1/vouchers/{h.voucher_id}/till-code?qr=false"
        code = (await driver.pool.request("POST", path, driver.bearer(h.person_id))).json()["code"]
        body = {
            "code": code,
            "order_ref": f"fo-{h.voucher_id}-{step.cycle}",
            "order": {
                "list_price_fen": order.list_price_fen,
                "merchant_promotion_fen": order.merchant_promotion_fen,
            },
        }
        key = f"fr-{h.voucher_id}-{step.cycle}"
        reply = await driver.signed(till, "POST", "/v1/merchant/redemptions", body, key)
        if reply.status != 201:
            dropped.add(h.voucher_id)
            return
        made = reply.json()["redemption"]
        base = int(made["list_price_fen"]) - int(made["merchant_promotion_fen"])
        redeemed[(h.voucher_id, step.cycle)] = (str(made["id"]), base)
        truth.redemption_ids.add(str(made["id"]))

    async def refund(step: _Step) -> None:
        redemption_id, base = redeemed[(step.holding.voucher_id, step.cycle)]
        path = f"/v1/merchant/redemptions/{redemption_id}/refunds"
        await driver.signed(
            tills[step.merchant_id], "POST", path, {"refund_fen": base}, f"ff-{redemption_id}"
        )

    for at, group in groupby(_steps(driver, rings, truth, rng), key=lambda s: s.at):
        await driver.set_clock(at)
        todo: list[Awaitable[None]] = []
        for step in group:
            if step.holding.voucher_id in dropped:
                continue
            act: Callable[[_Step], Awaitable[None]] = refund if step.refund else redeem
            todo.append(act(step))
        await asyncio.gather(*todo)
