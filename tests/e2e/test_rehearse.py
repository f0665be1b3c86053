"""`xfq rehearse` in its bounded form: a real Redis and two granian workers on loopback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
if "PYTHONPATH" in os.environ:  # the xfq under test, when it is not the installed one
    ENV["PYTHONPATH"] = os.environ["PYTHONPATH"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_a_small_rehearsal_answers_everyone_and_reconciles(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xfq", "rehearse", "--people", "400", "--connections", "32",
         "--bound", "120", "--arrival-scale", "0.1", "--workdir", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300, check=False, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Traceback" not in done.stderr
    assert "│ citizens" in out and "400" in out
    assert re.search(r"claim passes before the opening\s*│\s*400 in ", out), out
    assert re.search(r"errors \(5xx, transport\)\s*│\s*0\s*│", out), out
    assert re.search(r"reconciled \(Redis and ledger\)\s*│\s*yes\s*│", out), out
    assert "issued" in out and "(cut by the bound)" not in out
    # the servers' clock ran from the opening: the round was open when the wave began
    assert re.search(r"clock at the wave's start\s*│\s*10:\d\d:\d\d, the opening \+ [0-9.]+ s", out)
    # the server and its two workers, each with its peak memory and CPU time
    processes = re.findall(r"pid \d+: (\d+) MB, ([0-9.]+) s", out)
    assert len(processes) == 3, out
    assert all(float(mb) > 0 and float(cpu) > 0 for mb, cpu in processes), out
