"""The opening second: every citizen tries their wishes in arrival order, through the services."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from xfq.adapters.clock import SimulatedClock
from xfq.domain.claim import ClaimCode
from xfq.domain.voucher import Voucher
from xfq.ports import ClaimAnswer, ClaimEngine, ClaimRequest
from xfq.services.grab import submit_claim
from xfq.simulation.population import SimCitizen

TICK_MS = 100  # answers of one tick are awaited together, as a server's in-flight requests


@dataclass
class GrabResult:
    answers: Counter[str] = field(default_factory=Counter)
    issued: list[Voucher] = field(default_factory=list)
    sold_out_at: dict[str, datetime] = field(default_factory=dict)
    requests: int = 0


@dataclass(order=True)
class _Attempt:
    at_ms: int
    person: int
    wish: int


def run_grab(
    engine: ClaimEngine,
    clock: SimulatedClock,
    opens_at: datetime,
    people: list[SimCitizen],
    progress: Callable[[int], None] = lambda _n: None,
) -> GrabResult:
    """Each person sends their first wish on arrival and their next one 0.3 s after an answer."""
    result = GrabResult()
    seen: set[str] = set()
    queue = [_Attempt(p.arrival_ms, i, 0) for i, p in enumerate(people)]
    heapq.heapify(queue)
    while queue:
        tick_end = (queue[0].at_ms // TICK_MS + 1) * TICK_MS
        clock.set(opens_at + timedelta(milliseconds=queue[0].at_ms))
        batch = []
        while queue and queue[0].at_ms < tick_end:
            batch.append(heapq.heappop(queue))
        sent = [(a, _send(engine, clock, people[a.person], a, result)) for a in batch]
        wait([f for _, futures in sent for f in futures])
        for attempt, futures in sent:
            answers = [f.result() for f in futures]
            _record(answers, people[attempt.person].wishes[attempt.wish], clock, result, seen)
            _next_wish(attempt, people[attempt.person], answers[0], queue)
        progress(len(batch))
    return result


def _send(
    engine: ClaimEngine,
    clock: SimulatedClock,
    person: SimCitizen,
    attempt: _Attempt,
    result: GrabResult,
) -> list[Future[ClaimAnswer]]:
    type_id = person.wishes[attempt.wish]
    key = f"{person.citizen.person_id}-{attempt.wish}"
    requests = [ClaimRequest(person.citizen, type_id, key)]
    if person.double_tap:
        requests.append(requests[0])
    if person.spammer:
        requests += [ClaimRequest(person.citizen, type_id, f"{key}-x{i}") for i in range(3)]
    result.requests += len(requests)
    return [submit_claim(engine, clock, r) for r in requests]


def _record(
    answers: list[ClaimAnswer],
    type_id: str,
    clock: SimulatedClock,
    result: GrabResult,
    seen: set[str],
) -> None:
    for answer in answers:
        result.answers[answer.code.value] += 1
        voucher = answer.voucher
        if answer.code is ClaimCode.ISSUED and voucher is not None and voucher.id not in seen:
            seen.add(voucher.id)  # a double tap is answered with the same voucher
            result.issued.append(voucher)
        elif answer.code is ClaimCode.SOLD_OUT:
            result.sold_out_at.setdefault(type_id, clock.now())


def _next_wish(
    attempt: _Attempt, person: SimCitizen, answer: ClaimAnswer, queue: list[_Attempt]
) -> None:
    wish = attempt.wish + 1
    if wish < len(person.wishes) and answer.code is not ClaimCode.NOT_ELIGIBLE:
        heapq.heappush(queue, _Attempt(attempt.at_ms + 300, attempt.person, wish))
