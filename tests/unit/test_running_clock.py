"""The running simulated clock (XFQ_SIMULATED_START with XFQ_SIMULATED_ANCHOR): it reads the
start at the anchor, moves with real time, and every process given the same pair agrees."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from xfq.adapters.clock import RunningClock, SimulatedClock
from xfq.bootstrap import simulated_clock
from xfq.config import Settings, settings_problems
from xfq.ports import Clock

OPENING = datetime(2022, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ANCHOR = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_it_reads_the_start_at_the_anchor_and_moves_as_real_time_does() -> None:
    real = SimulatedClock(ANCHOR - timedelta(seconds=30))
    clock = RunningClock(OPENING, ANCHOR, real)
    assert clock.now() == OPENING - timedelta(seconds=30)
    real.set(ANCHOR)
    assert clock.now() == OPENING
    real.advance(timedelta(seconds=1.5))
    assert clock.now() == OPENING + timedelta(seconds=1.5)
    assert clock.now().utcoffset() == timedelta(hours=8)  # in the start's zone


def _running(start: datetime, anchor: datetime) -> Clock:
    clock = simulated_clock(Settings(simulated_start=start, simulated_anchor=anchor))
    assert isinstance(clock, RunningClock)
    return clock


def _real_time_moves() -> None:
    """Until the system clock has moved on (a bounded wait)."""
    before = datetime.now(UTC)
    deadline = time.monotonic() + 10
    while datetime.now(UTC) <= before + timedelta(milliseconds=50):
        assert time.monotonic() < deadline, "the system clock does not move"
        time.sleep(0.01)


def test_clocks_built_from_the_same_settings_at_different_times_read_the_same_time() -> None:
    anchor = datetime.now(UTC)
    first = _running(OPENING, anchor)
    _real_time_moves()
    later = _running(OPENING, anchor)  # as a worker started later, or one respawned
    before, read, after = first.now(), later.now(), first.now()
    assert before <= read <= after


def test_the_clock_from_the_settings_moves_with_real_time() -> None:
    clock = _running(OPENING, datetime.now(UTC))
    first = clock.now()
    assert first >= OPENING
    _real_time_moves()
    assert clock.now() - first >= timedelta(milliseconds=50)


def test_the_anchor_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFQ_SIMULATED_START", "2022-03-05T10:00:00+08:00")
    monkeypatch.setenv("XFQ_SIMULATED_ANCHOR", "2026-12-01T08:00:00Z")
    settings = Settings()
    assert (settings.simulated_start, settings.simulated_anchor) == (OPENING, ANCHOR)
    assert isinstance(simulated_clock(settings), RunningClock)


def test_without_an_anchor_the_simulated_clock_stands_still() -> None:
    clock = simulated_clock(Settings(simulated_start=OPENING))
    assert isinstance(clock, SimulatedClock)
    assert simulated_clock(Settings()) is None  # real time


def _problems(**settings: object) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        Settings(**settings)  # type: ignore[arg-type]
    return settings_problems(refused.value)


def test_an_anchor_without_a_start_is_refused_with_a_reason() -> None:
    assert _problems(simulated_anchor=ANCHOR) == [
        "XFQ_SIMULATED_ANCHOR needs XFQ_SIMULATED_START: the anchor is the real instant at which"
        " the simulated clock reads the start"
    ]


@pytest.mark.parametrize("name", ["simulated_start", "simulated_anchor"])
def test_a_time_without_its_utc_offset_is_refused_with_a_reason(name: str) -> None:
    aware = {"simulated_start": OPENING, "simulated_anchor": ANCHOR}
    problems = _problems(**(aware | {name: "2022-03-05T10:00:00"}))
    assert problems == [f"XFQ_{name.upper()}: needs its UTC offset, as in"
                        " 2022-03-05T10:00:00+08:00 or 2022-03-05T02:00:00Z"]  # fmt: skip
