"""The opening second: every citizen tries their wishes in arrival order, through the services."""

from __future__ import annotations

import heapq
import threading
from collections import Counter, deque
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

_ISSUED, _SOLD_OUT, _NOT_ELIGIBLE = ClaimCode.ISSUED, ClaimCode.SOLD_OUT, ClaimCode.NOT_ELIGIBLE

# An attempt is one int: arrival in ms after the opening, person index, index of the wish. The
# queue holds ~300,000 of them; a heap of ints compares ~4× faster than one of tuples.
_Attempt = int
_MS_SHIFT, _PERSON_SHIFT, _WISH_MASK = 40, 8, 0xFF
_PERSON_MASK = (1 << (_MS_SHIFT - _PERSON_SHIFT)) - 1
_NEXT_WISH = (NEXT_WISH_MS << _MS_SHIFT) + 1  # NEXT_WISH_MS later, the next wish


def _attempt(at_ms: int, person_index: int, wish: int) -> _Attempt:
    return (at_ms << _MS_SHIFT) | (person_index << _PERSON_SHIFT) | wish


def _arrival_ms(attempt: _Attempt) -> int:
    return attempt >> _MS_SHIFT


def _person_and_wish(attempt: _Attempt) -> tuple[int, int]:
    return (attempt >> _PERSON_SHIFT) & _PERSON_MASK, attempt & _WISH_MASK


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


@dataclass
class _Tick:
    start_ms: int
    batch: list[_Attempt]
    replies: _Replies
    sent: int


def run_grab(
    engine: ClaimEngine,
    clock: SimulatedClock,
    opens_at: datetime,
    people: list[SimCitizen],
    progress: Callable[[int], None] = lambda _n: None,
) -> GrabResult:
    """Each person sends their first wish on arrival and their next one after an answer.

    Ticks overlap: a tick is sent while earlier ones wait for their commit, as long as it ends
    before the first follow-up an earlier tick can cause (NEXT_WISH_MS after its start).
    """
    result = GrabResult()
    seen: set[str] = set()
    assert len(people) <= _PERSON_MASK and all(len(p.wishes) <= _WISH_MASK for p in people)
    queue: list[_Attempt] = [_attempt(p.arrival_ms, i, 0) for i, p in enumerate(people)]
    heapq.heapify(queue)
    pending: deque[_Tick] = deque()
    while queue or pending:
        tick_end = (_arrival_ms(queue[0]) // TICK_MS + 1) * TICK_MS if queue else None
        if pending and (tick_end is None or tick_end > pending[0].start_ms + NEXT_WISH_MS):
            tick = pending.popleft()
            tick.replies.wait(tick.sent)
            _record(tick, people, opens_at, queue, result, seen)
            progress(len(tick.batch))
            continue
        assert tick_end is not None
        start_ms = _arrival_ms(queue[0])
        clock.set(opens_at + timedelta(milliseconds=start_ms))
        batch = []
        end = tick_end << _MS_SHIFT
        while queue and queue[0] < end:
            batch.append(heapq.heappop(queue))
        replies = _Replies()
        sent = 0
        for slot, attempt in enumerate(batch):
            sent += _send(engine, clock, people, attempt, slot, replies)
        result.requests += sent
        pending.append(_Tick(start_ms, batch, replies, sent))
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
    person_index, wish = _person_and_wish(attempt)
    person = people[person_index]
    type_id = person.wishes[wish]
    key = f"{person.citizen.person_id}-{wish}"
    request = ClaimRequest(person.citizen, type_id, key)
    reply = replies.for_attempt(slot)
    send_claim(engine, clock, request, reply)
    sent = 1
    if person.double_tap:
        send_claim(engine, clock, request, reply)
        sent += 1
    if person.spammer:
        for i in range(3):
            send_claim(engine, clock, ClaimRequest(person.citizen, type_id, f"{key}-x{i}"), reply)
        sent += 3
    return sent


def _record(
    tick: _Tick,
    people: list[SimCitizen],
    opens_at: datetime,
    queue: list[_Attempt],
    result: GrabResult,
    seen: set[str],
) -> None:
    moved: set[int] = set()
    at = opens_at + timedelta(milliseconds=tick.start_ms)
    for slot, answer in tick.replies.answers:
        if isinstance(answer, BaseException):
            raise answer
        attempt = tick.batch[slot]
        person_index, wish = _person_and_wish(attempt)
        person = people[person_index]
        code = answer.code
        result.answers[code] += 1  # a StrEnum counts under its value
        voucher = answer.voucher
        if code is _ISSUED and voucher is not None and voucher.id not in seen:
            seen.add(voucher.id)  # a double tap is answered with the same voucher
            result.issued.append(voucher)
        elif code is _SOLD_OUT:
            result.sold_out_at.setdefault(person.wishes[wish], at)
        if slot not in moved and code is not _NOT_ELIGIBLE:
            moved.add(slot)
            if wish + 1 < len(person.wishes):
                heapq.heappush(queue, attempt + _NEXT_WISH)
