"""Idempotency-Key for the operators' writes: a retry gets the first answer and changes nothing.

Same key and same request: the stored answer. Same key, another request: 422. Same key while
the first is still being answered, in this process or in another on a PostgreSQL ledger: 409.
(Claims, redemptions and refunds keep their keys on their own ledger rows, decided inside the
same transaction as the write.)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from xfq.api.blocking import on_ledger, one_at_a_time
from xfq.api.problems import problem
from xfq.bootstrap import Container

_in_flight: set[tuple[str, str]] = set()
_in_flight_lock = threading.Lock()


async def once(
    request: Request,
    container: Container,
    subject: str,
    key: str,
    handle: Callable[[], Any],
    status: int = 200,
    *,
    serial: bool = False,
) -> Response:
    """Answer `handle()` for this key once; later calls with the key get the same answer.

    `handle` runs with the key's checks on a ledger thread (`serial`: on the one thread of
    `one_at_a_time`), never on the event loop: it may wait on the ledger as it likes."""
    body = await request.body()
    scope = f"{subject}:{request.method}:{request.url.path}"
    digest = hashlib.sha256(body).hexdigest()
    run = one_at_a_time if serial else on_ledger
    return await run(container, _answer_once, container, scope, key, digest, handle, status)


def _answer_once(
    container: Container,
    scope: str,
    key: str,
    digest: str,
    handle: Callable[[], Any],
    status: int,
) -> Response:
    stored = container.ledger.stored_answer(scope, key)
    if stored is not None:
        return _replay(stored, digest)
    with _in_flight_lock:
        if (scope, key) in _in_flight:
            return _in_flight_problem()
        _in_flight.add((scope, key))
    try:
        with container.ledger.answering(scope, key) as held:  # against other processes
            if not held:
                return _in_flight_problem()
            stored = container.ledger.stored_answer(scope, key)  # answered there meanwhile
            if stored is not None:
                return _replay(stored, digest)
            answer = handle()
            payload = answer.model_dump_json() if hasattr(answer, "model_dump_json") else answer
            ledger = container.ledger
            ledger.store_answer(scope, key, digest, status, payload, container.clock.now())
            return Response(payload, status, media_type="application/json")
    finally:
        with _in_flight_lock:
            _in_flight.discard((scope, key))


def _in_flight_problem() -> Response:
    return problem(
        409,
        "idempotency_in_flight",
        "Still working",
        "a request with this Idempotency-Key is still being answered",
    )


def _replay(stored: tuple[str, int, str], digest: str) -> Response:
    request_sha256, status, body = stored
    if request_sha256 != digest:
        return problem(
            422,
            "idempotency_conflict",
            "Idempotency key reused",
            "this Idempotency-Key was used for a different request",
        )
    return Response(
        body, status, media_type="application/json", headers={"Idempotent-Replay": "true"}
    )
