"""One operator's Idempotency-Key sent to two API processes at once (two worker processes on one
PostgreSQL ledger): one effect, and the second request gets the first's answer or a 409."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import cast

from starlette.requests import Request
from starlette.types import Message

from xfq.adapters.clock import SimulatedClock
from xfq.adapters.sql.audit import iter_entries
from xfq.adapters.sql.ledger import SqlLedger
from xfq.api.blocking import HandlerThreads
from xfq.api.idempotency import once
from xfq.bootstrap import Container
from xfq.services import operations

AT = datetime(2022, 3, 4, 9, 0, tzinfo=UTC)
MERCHANTS = 30


@dataclass
class Worker:
    """What `once` uses of a worker's container."""

    ledger: SqlLedger
    clock: SimulatedClock
    threads: HandlerThreads


def post(path: str) -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""}
    return Request(scope, receive)


async def approve(container: Container, merchant: str) -> str:
    """The approval route's work under `once`: what the request was answered."""

    def handle() -> str:
        key_id, secret = f"mk_{secrets.token_hex(6)}", secrets.token_hex(8)
        operations.approve_merchant(container.ledger, "op", merchant, key_id, secret, AT).result()
        return json.dumps({"key_id": key_id})

    path = f"/v1/ops/merchants/{merchant}/approve"
    try:
        answer = await once(post(path), container, "op", f"approve-{merchant}", handle)
    except Exception as error:  # what the API would answer 409 storage_conflict (or 500)
        return type(error).__name__
    if answer.status_code == 200:
        return "replayed" if answer.headers.get("Idempotent-Replay") else "answered"
    return str(json.loads(bytes(answer.body))["code"])


def worker_process(url: str, barrier: Barrier, answers: Queue[tuple[str, str]]) -> None:
    ledger, threads = SqlLedger(url), HandlerThreads(2, 60.0)
    container = cast(Container, Worker(ledger, SimulatedClock(AT), threads))
    try:
        for n in range(MERCHANTS):
            barrier.wait(30)
            answers.put((f"m{n}", asyncio.run(approve(container, f"m{n}"))))
    finally:
        threads.close()
        ledger.close()


def test_one_key_at_two_api_processes_at_once_has_one_effect(postgres_url: str) -> None:
    ledger = SqlLedger(postgres_url)
    for n in range(MERCHANTS):
        ledger.enroll_merchant(f"m{n}", "Shop", "retail", AT, status="pending")
    spawn = multiprocessing.get_context("spawn")
    barrier, answers = spawn.Barrier(2), spawn.Queue()
    workers = [
        spawn.Process(target=worker_process, args=(postgres_url, barrier, answers))
        for _ in range(2)
    ]
    for process in workers:
        process.start()
    got: dict[str, list[str]] = {}
    for _ in range(2 * MERCHANTS):
        merchant, answer = answers.get(timeout=60)
        got.setdefault(merchant, []).append(answer)
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    try:
        for pair in got.values():
            assert sorted(pair) in (["answered", "idempotency_in_flight"], ["answered", "replayed"])
        keys = Counter(merchant for _, merchant in ledger.merchant_keys().values())
        assert keys == dict.fromkeys(got, 1)
        approvals = [
            e.subject for e in iter_entries(ledger.engine) if e.action == "merchant.approved"
        ]
        assert sorted(approvals) == sorted(got)
    finally:
        ledger.close()
