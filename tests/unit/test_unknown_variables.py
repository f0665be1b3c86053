"""A mistyped XFQ_* variable is said, not silently ignored; in production it stops the start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from xfq.config import unknown_variables


def test_a_mistyped_setting_is_named_with_the_one_meant() -> None:
    environ = {
        "XFQ_REDIS_ULR": "redis://127.0.0.1:6379/0",
        "XFQ_REDIS_URL": "redis://127.0.0.1:6379/0",  # a setting
        "XFQ_BENCH_TYPE": "plenty",  # read by the benchmarks, not a setting
        "XFQ_NOTHING_LIKE_IT": "1",
        "PATH": "/usr/bin",
    }
    assert unknown_variables(environ) == [
        "XFQ_NOTHING_LIKE_IT is not a setting",
        "XFQ_REDIS_ULR is not a setting; did you mean XFQ_REDIS_URL?",
    ]


def _xfq(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XFQ_")}
    return subprocess.run(
        [sys.executable, "-m", "xfq", "reconcile", str(tmp_path / "none.db")],
        env=clean | variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_in_production_a_mistyped_setting_stops_the_command_before_it_runs(
    tmp_path: Path,
) -> None:
    done = _xfq(tmp_path, XFQ_ENVIRONMENT="production", XFQ_SIMULATED_ANCHR="x")
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "XFQ_SIMULATED_ANCHR is not a setting; did you mean XFQ_SIMULATED_ANCHOR?" in said
    assert "Traceback" not in done.stderr
    assert "no ledger file" not in said  # stopped before the command ran


def test_in_development_a_mistyped_setting_is_a_warning_and_the_command_runs(
    tmp_path: Path,
) -> None:
    done = _xfq(tmp_path, XFQ_SIMULATED_ANCHR="x")
    said = " ".join(done.stderr.split())
    assert "xfq: warning: XFQ_SIMULATED_ANCHR is not a setting" in said
    assert "xfq reconcile: no ledger file at" in said  # the command itself ran
