"""Clocks: the system's, and a simulated one the demo and the tests move by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


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
