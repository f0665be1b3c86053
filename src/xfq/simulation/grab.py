"""The opening second: every citizen tries their wishes in arrival order, through the services."""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from xfq.adapters.clock import SimulatedClock
from xfq.domain.claim import ClaimCode
from xfq.domain.voucher import Voucher
from xfq.ports import ClaimAnswer, ClaimEngine, ClaimRequest
from xfq.services.grab import send_claim
from xfq.simulation.population import SimCitizen

TICK_MS = 100  # answers of one tick are awaited together, as a server's in-flight requests
NEXT_WISH_MS = 300  # a person's next try comes this long after an answer

# (arrival in ms after opening, person index, index of the wish)
_Attempt = tuple[int, int, int]


@dataclass
class GrabResult:
    answers: Counter[str] = field(default_factory=Counter)
    issued: list[Voucher] = field(default_factory=list)
    sold_out_at: dict[str, datetime] = field(default_factory=dict)
    requests: int = 0


class _Replies:
    """Collects the answers of one tick; `wait` returns when every request was answered."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, ClaimAnswer | BaseException]] = []
        self.expected: int | None = None
        self._all_in = threading.Event()

    def for_attempt(self, slot: int) -> Callable[[ClaimAnswer | BaseException], None]:
        def reply(answer: ClaimAnswer | BaseException) -> None:
            self.answers.append((slot, answer))  # list.append is atomic
            if self.expected is not None and len(self.answers) >= self.expected:
                self._all_in.set()

        return reply

    def wait(self, expected: int) -> None:
        self.expected = expected
        if len(self.answers) < expected:
            self._all_in.wait()


def run_grab(
    engine: ClaimEngine,
    clock: SimulatedClock,
    opens_at: datetime,
    people: list[SimCitizen],
    progress: Callable[[int], None] = lambda _n: None,
) -> GrabResult:
    """Each person sends their first wish on arrival and their next one after an answer."""
    result = GrabResult()
    seen: set[str] = set()
    queue: list[_Attempt] = [(p.arrival_ms, i, 0) for i, p in enumerate(people)]
    heapq.heapify(queue)
    while queue:
        tick_end = (queue[0][0] // TICK_MS + 1) * TICK_MS
        clock.set(opens_at + timedelta(milliseconds=queue[0][0]))
        batch = []
        while queue and queue[0][0] < tick_end:
            batch.append(heapq.heappop(queue))
        replies = _Replies()
        sent = sum(_send(engine, clock, people, a, slot, replies) for slot, a in enumerate(batch))
        replies.wait(sent)
        result.requests += sent
        _record(replies, batch, people, clock, queue, result, seen)
        progress(len(batch))
    return result


def _send(
    engine: ClaimEngine,
    clock: SimulatedClock,
    people: list[SimCitizen],
    attempt: _Attempt,
    slot: int,
    replies: _Replies,
) -> int:
    """Send one attempt (with a person's retries and spam); the number of requests sent."""
    person = people[attempt[1]]
    type_id = person.wishes[attempt[2]]
    key = f"{person.citizen.person_id}-{attempt[2]}"
    requests = [ClaimRequest(person.citizen, type_id, key)]
    if person.double_tap:
        requests.append(requests[0])
    if person.spammer:
        requests += [ClaimRequest(person.citizen, type_id, f"{key}-x{i}") for i in range(3)]
    reply = replies.for_attempt(slot)
    for request in requests:
        send_claim(engine, clock, request, reply)
    return len(requests)


def _record(
    replies: _Replies,
    batch: list[_Attempt],
    people: list[SimCitizen],
    clock: SimulatedClock,
    queue: list[_Attempt],
    result: GrabResult,
    seen: set[str],
) -> None:
    moved: set[int] = set()
    for slot, answer in replies.answers:
        if isinstance(answer, BaseException):
            raise answer
        at_ms, person_index, wish = batch[slot]
        person = people[person_index]
        result.answers[answer.code.value] += 1
        voucher = answer.voucher
        if answer.code is ClaimCode.ISSUED and voucher is not None and voucher.id not in seen:
            seen.add(voucher.id)  # a double tap is answered with the same voucher
            result.issued.append(voucher)
        elif answer.code is ClaimCode.SOLD_OUT:
            result.sold_out_at.setdefault(person.wishes[wish], clock.now())
        if slot not in moved and answer.code is not ClaimCode.NOT_ELIGIBLE:
            moved.add(slot)
            if wish + 1 < len(person.wishes):
                heapq.heappush(queue, (at_ms + NEXT_WISH_MS, person_index, wish + 1))
