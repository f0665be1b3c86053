"""The reference round driven through a running xfq server, as wallets and tills would drive it.

The demo is the city's identity provider here: it signs citizens' and operators' tokens with its
own key, which the server is told to trust. Everything else goes through the public API.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from xfq.api.auth.dev_issuer import DevIssuer
from xfq.api.auth.merchant_signature import signed_headers
from xfq.api.auth.tokens import Role
from xfq.domain.campaign import Campaign, Round
from xfq.domain.checkout import Order
from xfq.simulation.http_client import HttpPool, Reply
from xfq.simulation.population import SimCitizen, SimMerchant
from xfq.simulation.week import (
    FULL_REFUND_SHARE,
    PARTIAL_REFUND_SHARE,
    WeekResult,
    day_of_use,
    plan_order,
)

NEXT_WISH_MS = 300
TICK_MS = 1000  # coarser than in process: each tick waits for its slowest answer over HTTP


class DemoIdentityProvider(DevIssuer):
    """The city's identity provider, played by the demo: a key of its own, trusted by the server."""

    issuer = "xfq-demo-idp"


@dataclass(frozen=True)
class Till:
    merchant: SimMerchant
    key_id: str
    secret: bytes


@dataclass
class HttpGrabResult:
    answers: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    issued: dict[str, tuple[str, str]] = field(default_factory=dict)  # voucher -> (person, type)
    sold_out_at: dict[str, datetime] = field(default_factory=dict)
    requests: int = 0


class Driver:
    def __init__(self, pool: HttpPool, idp: DemoIdentityProvider, campaign: Campaign) -> None:
        self.pool = pool
        self.idp = idp
        self.campaign = campaign
        self.now = campaign.round("r6").opens_at - timedelta(days=1)
        self._tokens: dict[str, str] = {}

    def bearer(
        self, subject: str, role: Role = Role.CITIZEN, citizen: SimCitizen | None = None
    ) -> dict[str, str]:
        token = self._tokens.get(subject)
        if token is None:
            residency = citizen.citizen.residency if citizen else None
            in_city = citizen.citizen.in_city if citizen else True
            token = self.idp.token(
                subject,
                role,
                self.now,
                ttl=timedelta(days=30),
                residency=residency.value if residency else None,
                in_city=in_city,
            )
            self._tokens[subject] = token
        return {"Authorization": f"Bearer {token}"}

    async def set_clock(self, moment: datetime) -> None:
        self.now = moment
        reply = await self.pool.request("PUT", "/dev/clock", body={"now": moment.isoformat()})
        assert reply.status == 200, reply.body

    async def enroll(self, merchants: list[SimMerchant]) -> list[Till]:
        ops = self.bearer("demo-operator", Role.OPERATOR)

        async def one(m: SimMerchant) -> Till:
            body = {"id": m.id, "name": m.name, "category": m.category}
            enroll = {**ops, "Idempotency-Key": f"enroll-{m.id}"}
            made = await self.pool.request("POST", "/v1/ops/merchants", enroll, body)
            assert made.status == 201, made.body
            approve = {**ops, "Idempotency-Key": f"approve-{m.id}"}
            path = f"/v1/ops/merchants/{m.id}/approve"
            key = (await self.pool.request("POST", path, approve)).json()
            return Till(m, key["key_id"], key["secret"].encode())

        return list(await asyncio.gather(*(one(m) for m in merchants)))

    async def grab(
        self, rnd: Round, people: list[SimCitizen], progress: Callable[[int], None]
    ) -> HttpGrabResult:
        result = HttpGrabResult()
        queue = [(p.arrival_ms, i, 0) for i, p in enumerate(people)]
        heapq.heapify(queue)
        while queue:
            tick_end = (queue[0][0] // TICK_MS + 1) * TICK_MS
            await self.set_clock(rnd.opens_at + timedelta(milliseconds=queue[0][0]))
            batch = []
            while queue and queue[0][0] < tick_end:
                batch.append(heapq.heappop(queue))
            codes = await asyncio.gather(
                *(self._attempt(people[i], w, result) for _, i, w in batch)
            )
            for (at_ms, i, wish), code in zip(batch, codes, strict=True):
                if code != "not_eligible" and wish + 1 < len(people[i].wishes):
                    heapq.heappush(queue, (at_ms + NEXT_WISH_MS, i, wish + 1))
            progress(len(batch))
        return result

    async def _attempt(self, person: SimCitizen, wish: int, result: HttpGrabResult) -> str:
        type_id = person.wishes[wish]
        key = f"{person.citizen.person_id}-{wish}"
        headers = {**self.bearer(person.citizen.person_id, citizen=person), "Idempotency-Key": key}
        sends = 2 if person.double_tap else 1
        replies = [
            await self.pool.request("POST", "/v1/claims", headers, {"type_id": type_id})
            for _ in range(sends)
        ]
        if person.spammer:
            for n in range(3):
                spam = {**headers, "Idempotency-Key": f"{key}-x{n}"}
                replies.append(
                    await self.pool.request("POST", "/v1/claims", spam, {"type_id": type_id})
                )
        code = ""
        for reply in replies:
            result.requests += 1
            result.statuses[reply.status] += 1
            body = reply.json()
            code = code or body.get("code", "")
            result.answers[body.get("code", str(reply.status))] += 1
            if body.get("code") == "sold_out":
                result.sold_out_at.setdefault(type_id, self.now)
            voucher = body.get("voucher")
            if voucher:
                result.issued[voucher["id"]] = (person.citizen.person_id, voucher["type_id"])
        return code

    async def week(
        self,
        issued: dict[str, tuple[str, str]],
        tills: list[Till],
        seed: int,
        progress: Callable[[int], None],
    ) -> WeekResult:
        rng = random.Random(seed + 2)
        result = WeekResult()
        by_category: dict[str, list[Till]] = {}
        for till in tills:
            by_category.setdefault(till.merchant.category, []).append(till)
        rnd = self.campaign.round("r6")
        days = [
            (rnd.opens_at.astimezone(self.campaign.tz).date() + timedelta(days=d)) for d in range(7)
        ]
        plan = [(voucher_id, day_of_use(days, rng)) for voucher_id in issued]
        for day in days:
            await self.set_clock(datetime.combine(day, time(14), tzinfo=self.campaign.tz))
            todays = [v for v, d in plan if d == day]
            await asyncio.gather(
                *(self._buy(v, issued[v], by_category, rng, result) for v in todays)
            )
            progress(len(todays))
        return result

    async def _buy(
        self,
        voucher_id: str,
        holder: tuple[str, str],
        by_category: dict[str, list[Till]],
        rng: random.Random,
        result: WeekResult,
    ) -> None:
        person, type_id = holder
        vtype = self.campaign.voucher_type(type_id)[1]
        till = rng.choice(by_category[vtype.category])
        order = plan_order(vtype, till.merchant, rng, result)
        if order is None:
            return
        code = (
            await self.pool.request(
                "POST", f"/v1/vouchers/{voucher_id}/till-code?qr=false", self.bearer(person)
            )
        ).json()["code"]
        redeemed = await self.signed(
            till,
            "POST",
            "/v1/merchant/redemptions",
            _redeem_body(code, order, voucher_id),
            f"r-{voucher_id}",
        )
        answer = redeemed.json()
        result.redeem_answers[answer.get("code", str(redeemed.status))] += 1
        if redeemed.status == 201:
            await self._maybe_refund(till, answer["redemption"], rng, result)

    async def _maybe_refund(
        self, till: Till, redemption: dict[str, object], rng: random.Random, result: WeekResult
    ) -> None:
        draw = rng.random()
        base = int(str(redemption["list_price_fen"])) - int(
            str(redemption["merchant_promotion_fen"])
        )
        if draw < FULL_REFUND_SHARE:
            refund = base
        elif draw < FULL_REFUND_SHARE + PARTIAL_REFUND_SHARE:
            refund = max(base // 4 // 100 * 100, 1)
        else:
            return
        path = f"/v1/merchant/redemptions/{redemption['id']}/refunds"
        reply = await self.signed(
            till, "POST", path, {"refund_fen": refund}, f"f-{redemption['id']}"
        )
        result.refund_outcomes[reply.json().get("outcome") or reply.json().get("code", "?")] += 1

    async def signed(
        self, till: Till, method: str, path: str, body: dict[str, object], key: str
    ) -> Reply:
        raw = json.dumps(body).encode()
        headers = signed_headers(till.key_id, till.secret, method, path, raw, self.now)
        headers["Idempotency-Key"] = key
        return await self.pool.request(method, path, headers, raw)


def _redeem_body(code: str, order: Order, voucher_id: str) -> dict[str, object]:
    return {
        "code": code,
        "order_ref": f"o-{voucher_id}",
        "order": {
            "list_price_fen": order.list_price_fen,
            "merchant_promotion_fen": order.merchant_promotion_fen,
        },
    }
