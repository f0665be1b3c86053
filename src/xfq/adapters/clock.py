"""Clocks: the system's, a simulated one the demo and the tests move by hand, and a simulated
one that runs at real speed (rehearsals)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from xfq.ports import Clock


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that stands still until told to move; safe to read from many threads."""

    def __init__(self, start: datetime) -> None:
        assert start.tzinfo is not None, "the simulated clock needs an aware start time"
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now  # one reference read is atomic; `advance` locks its read-modify-write

    def set(self, moment: datetime) -> None:
        assert moment.tzinfo is not None
        with self._lock:
            self._now = moment

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class RunningClock:
    """Simulated time at real speed: it reads `start` at the real instant `anchor`.

    The reading depends only on the pair and the system clock, not on when the process began:
    every worker process given the same pair reads the same time."""

    def __init__(self, start: datetime, anchor: datetime, real: Clock | None = None) -> None:
        assert start.tzinfo is not None and anchor.tzinfo is not None, "aware start and anchor"
        self._offset = start - anchor
        self._zone = start.tzinfo
        self._real = real or SystemClock()

    def now(self) -> datetime:
        return (self._real.now() + self._offset).astimezone(self._zone)
