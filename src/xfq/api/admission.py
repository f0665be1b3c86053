"""Admission control on the claim path: shed what the engine cannot answer soon, at once.

A process hands claims to its engine and waits for their answers. Past `max_in_flight` waiting
claims, or once the oldest has waited `max_wait_s`, the engine is behind: a new claim would only
queue behind the others (memory, then client timeouts). It is answered `429` with Retry-After
instead, which costs far less than deciding it. Answers that need no engine work (a sold-out
type known in memory) are never shed.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum


class Shed(StrEnum):
    """Why a claim was shed (the `reason` label of the shed counter)."""

    IN_FLIGHT = "in_flight"
    QUEUE_AGE = "queue_age"


class Ticket:
    """One claim waiting for its engine; `done` once answered."""

    __slots__ = ("done", "since_s")

    def __init__(self, since_s: float) -> None:
        self.since_s = since_s
        self.done = False


class Admission:
    """Claims in flight in one process: a count and their arrival order, both bounded."""

    def __init__(self, max_in_flight: int, max_wait_s: float) -> None:
        assert max_in_flight >= 1 and max_wait_s > 0
        self.max_in_flight = max_in_flight
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        # Tickets in arrival order; answered ones are dropped from the front lazily, so each
        # ticket is appended once and popped once. Its length is at most `max_in_flight` plus
        # the answered tickets behind a slow one, and those are bounded the same way.
        self._order: deque[Ticket] = deque()

    def enter(self, now_s: float) -> Ticket | Shed:
        """A ticket for a claim arriving at `now_s` (monotonic), or why it is shed."""
        if self.in_flight >= self.max_in_flight:
            return Shed.IN_FLIGHT
        if self.oldest_wait_s(now_s) > self.max_wait_s:
            return Shed.QUEUE_AGE
        ticket = Ticket(now_s)
        self._order.append(ticket)
        self.in_flight += 1
        return ticket

    def leave(self, ticket: Ticket) -> None:
        assert not ticket.done
        ticket.done = True
        self.in_flight -= 1

    def oldest_wait_s(self, now_s: float) -> float:
        """How long the oldest claim still in flight has waited (0 when none)."""
        order = self._order
        while order and order[0].done:
            order.popleft()
        return now_s - order[0].since_s if order else 0.0

    def retry_after_s(self) -> float:
        """A hint for a shed client: about as long as the backlog takes to clear, at least 1 s."""
        return max(1.0, self.max_wait_s)
