"""The fault-injection suite: a grab and redemptions on a real deployment while processes are
killed and paused and the links to the stores are slowed, cut and reset (see faults/run.py).

The bounded form runs in every `pytest`; `XFQ_FAULTS_LONG=1` (or `-m slow` with it) runs the
longer form, `XFQ_FAULTS_SECONDS` seconds per phase (default 120).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from faults.run import Plan, fault_run

needs_servers = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed"
)


def _failed(summary: dict[str, object]) -> list[object]:
    found = summary["checks"]
    assert isinstance(found, list)
    return [c for c in found if not c["ok"]]


@needs_servers
def test_a_grab_and_redemptions_under_faults_keep_every_promise(tmp_path: Path) -> None:
    summary = fault_run(Plan("bounded", people=200, grab_s=10, redeem_s=10), tmp_path)
    assert not _failed(summary), _failed(summary)
    assert summary["fault_errors"] == []
    assert summary["faults_total"] >= 10


@needs_servers
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("XFQ_FAULTS_LONG"), reason="set XFQ_FAULTS_LONG=1")
@pytest.mark.timeout(3600)
def test_a_longer_run_under_faults_keeps_every_promise(tmp_path: Path) -> None:
    seconds = float(os.environ.get("XFQ_FAULTS_SECONDS", "120"))
    people, scale = int(seconds * 15), max(1, int(seconds // 30))
    plan = Plan("long", people, grab_s=seconds, redeem_s=seconds, stock_scale=scale)
    summary = fault_run(plan, tmp_path)
    assert not _failed(summary), _failed(summary)
