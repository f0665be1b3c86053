"""What citizens and tills do during a fault run, over HTTP, each request kept in a `History`.

The grab: people arrive spread over the phase, each wants two or three voucher types in turn;
some tap twice with the same idempotency key, some spam with fresh keys. The redemptions: each
voucher held is shown at a till of its category (its holder fetches a till code first), some at
two tills at once, some refunded in full (the voucher comes back and is spent again) or in part.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from faults.campaign import MERCHANTS, TYPES
from faults.history import UNKNOWN, Attempt, History, Operation, attempt_of
from xfq.api.auth.merchant_signature import signed_headers
from xfq.api.auth.tokens import Role
from xfq.simulation.over_http import DemoIdentityProvider

CLAIM_PATH = "/v1/claims"
REDEEM_PATH = "/v1/merchant/redemptions"
TILL_CODE_TRIES = 40
RETRY_PAUSE_S = 0.25
MAX_CONNECTIONS = 64  # above what the phases send at once (concurrency × 2)


@dataclass(frozen=True)
class Till:
    merchant_id: str
    category: str
    key_id: str
    secret: bytes


@dataclass(frozen=True)
class Holding:
    voucher_id: str
    person: str
    type_id: str


class Workload:
    def __init__(
        self,
        base_url: str,
        idp: DemoIdentityProvider,
        now: datetime,
        history: History,
        seed: int,
        timeout_s: float,
    ) -> None:
        self.idp = idp
        self.now = now
        self.history = history
        self.rng = random.Random(seed)
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=64)
        # Waiting for a free connection is the client's own queue, not the server's answer.
        timeout = httpx.Timeout(timeout_s, pool=None)
        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)
        self._tokens: dict[str, str] = {}
        self.tills: list[Till] = []

    async def close(self) -> None:
        await self.client.aclose()

    def bearer(self, subject: str, role: Role = Role.CITIZEN) -> dict[str, str]:
        token = self._tokens.get(subject)
        if token is None:
            token = self.idp.token(
                subject, role, self.now, ttl=timedelta(days=30), residency="permanent"
            )
            self._tokens[subject] = token
        return {"Authorization": f"Bearer {token}"}

    # --- one attempt ------------------------------------------------------------------------

    def _headers(self, op: Operation) -> dict[str, str]:
        headers = {"Idempotency-Key": op.key, "Content-Type": "application/json"}
        if op.kind == "claim":
            return {**headers, **self.bearer(op.actor)}
        till = next(t for t in self.tills if t.merchant_id == op.actor)
        signed = signed_headers(till.key_id, till.secret, "POST", op.path, op.body, self.now)
        return {**headers, **signed}

    async def attempt(self, op: Operation) -> Attempt:
        try:
            reply = await self.client.post(op.path, content=op.body, headers=self._headers(op))
        except httpx.HTTPError as error:
            got = Attempt(None, UNKNOWN, {}, type(error).__name__)
        else:
            got = attempt_of(reply.status_code, reply.content)
        op.attempts.append(got)
        return got

    # --- set-up -----------------------------------------------------------------------------

    async def enroll_tills(self) -> None:
        """Operators enroll and approve the merchants (before any fault)."""
        ops = self.bearer("op-1", Role.OPERATOR)
        for category, merchants in MERCHANTS.items():
            for merchant_id in merchants:
                body = {"id": merchant_id, "name": merchant_id, "category": category}
                headers = {**ops, "Idempotency-Key": f"e-{merchant_id}"}
                made = await self.client.post("/v1/ops/merchants", json=body, headers=headers)
                assert made.status_code == 201, made.text
                approved = await self.client.post(
                    f"/v1/ops/merchants/{merchant_id}/approve",
                    headers={**ops, "Idempotency-Key": f"a-{merchant_id}"},
                )
                assert approved.status_code == 200, approved.text
                key = approved.json()
                secret = key["secret"].encode()
                self.tills.append(Till(merchant_id, category, key["key_id"], secret))

    # --- the grab ---------------------------------------------------------------------------

    async def grab(self, people: int, duration_s: float, concurrency: int) -> None:
        start = time.monotonic()
        slots = asyncio.Semaphore(concurrency)

        async def person(n: int) -> None:
            await asyncio.sleep(duration_s * n / people)
            async with slots:
                await self._wishes(f"c{n:05d}")

        await asyncio.gather(*(person(n) for n in range(people)))
        assert time.monotonic() - start < duration_s * 20, "the grab did not end"

    async def _wishes(self, person: str) -> None:
        wishes = self.rng.sample(sorted(TYPES), self.rng.choice((2, 3)))
        for n, type_id in enumerate(wishes):
            body = json.dumps({"type_id": type_id}).encode()
            op = self.history.add(Operation("claim", person, f"{person}-{n}", CLAIM_PATH, body))
            taps = 2 if self.rng.random() < 0.25 else 1  # a double tap: the same key at once
            await asyncio.gather(*(self.attempt(op) for _ in range(taps)))
            if self.rng.random() < 0.15:  # a spammer: the same wish under a fresh key
                spam = Operation("claim", person, f"{person}-{n}-x", CLAIM_PATH, body)
                await self.attempt(self.history.add(spam))

    # --- redemptions ------------------------------------------------------------------------

    async def redeem_all(self, held: list[Holding], duration_s: float, concurrency: int) -> None:
        slots = asyncio.Semaphore(concurrency)

        async def one(n: int, holding: Holding) -> None:
            await asyncio.sleep(duration_s * n / max(1, len(held)))
            async with slots:
                await self._spend(holding)

        await asyncio.gather(*(one(n, h) for n, h in enumerate(held)))

    async def _till_code(self, holding: Holding) -> str | None:
        """The holder's code to show at the till (the voucher may not be persisted yet)."""
        path = f"/v1/vouchers/{holding.voucher_id}/till-code?qr=false"
        for _ in range(TILL_CODE_TRIES):
            try:
                reply = await self.client.post(path, headers=self.bearer(holding.person))
                if reply.status_code == 200:
                    return str(reply.json()["code"])
            except httpx.HTTPError:
                pass
            await asyncio.sleep(RETRY_PAUSE_S)
        return None

    async def _spend(self, holding: Holding, visit: int = 0) -> None:
        code = await self._till_code(holding)
        if code is None:
            return
        category = holding.type_id.split("-")[1]
        tills = [t for t in self.tills if t.category == category]
        threshold_fen = int(holding.type_id.split("-")[2]) * 100
        rivals = ("", "b") if self.rng.random() < 0.3 else ("",)  # b: a second till at once
        ops = [
            self._redeem_op(self.rng.choice(tills), holding, code, threshold_fen, visit, rival)
            for rival in rivals
        ]
        got = await asyncio.gather(*(self.attempt(op) for op in ops))
        for op, answer in zip(ops, got, strict=True):
            if answer.status == 201:
                await self._maybe_refund(op.actor, answer.body["redemption"], holding, visit)

    def _redeem_op(
        self, till: Till, holding: Holding, code: str, threshold_fen: int, visit: int, rival: str
    ) -> Operation:
        order_fen = threshold_fen + self.rng.randrange(0, 5000, 100)
        ref = f"o-{holding.voucher_id}-{visit}{rival}"
        body = {"code": code, "order_ref": ref, "order": {"list_price_fen": order_fen}}
        raw = json.dumps(body).encode()
        return self.history.add(Operation("redeem", till.merchant_id, f"r-{ref}", REDEEM_PATH, raw))

    async def _maybe_refund(
        self, merchant_id: str, redemption: dict[str, object], holding: Holding, visit: int
    ) -> None:
        draw = self.rng.random()
        if draw > 0.5:
            return
        paid = int(str(redemption["list_price_fen"]))
        full = draw < 0.35
        refund_fen = paid if full else max(100, paid // 4)
        path = f"{REDEEM_PATH}/{redemption['id']}/refunds"
        raw = json.dumps({"refund_fen": refund_fen}).encode()
        op = self.history.add(Operation("refund", merchant_id, f"f-{redemption['id']}", path, raw))
        answer = await self.attempt(op)
        if full and answer.body.get("outcome") == "restored" and visit < 2:
            await self._spend(holding, visit + 1)  # the voucher came back: spent again

    # --- after the faults -------------------------------------------------------------------

    async def resolve(self, rounds: int, concurrency: int) -> None:
        """Retry every operation whose outcome is unknown, same key and body, until known."""
        slots = asyncio.Semaphore(concurrency)

        async def retry(op: Operation) -> None:
            async with slots:
                await self.attempt(op)

        for _ in range(rounds):
            todo = self.history.unresolved()
            if not todo:
                return
            await asyncio.gather(*(retry(op) for op in todo))
            await asyncio.sleep(RETRY_PAUSE_S)
