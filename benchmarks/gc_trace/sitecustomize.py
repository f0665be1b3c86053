"""Time every cyclic-GC pass of every Python process started with this folder on PYTHONPATH.

    PYTHONPATH=benchmarks/gc_trace XFQ_GC_TRACE_DIR=/tmp/gc .venv/bin/xfq rehearse ...

Each process rewrites `$XFQ_GC_TRACE_DIR/gc-<pid>.json` at most every 2 s (and at exit):
its command, CPU seconds so far, and per generation the passes, their total and longest
seconds. Workers killed at the end of a run keep their last file. Used for RESULTS.md's
garbage-collector figures; not part of xfq.

With XFQ_GC_TRACE_DEFAULTS=1 the API workers keep Python's default collector settings
(`xfq.gc_policy.tune_for_serving` does nothing): the "before" of a before/after comparison.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time
from typing import Any

_DIR = os.environ.get("XFQ_GC_TRACE_DIR")
_passes = [0, 0, 0]
_seconds = [0.0, 0.0, 0.0]
_longest = [0.0, 0.0, 0.0]
_started = [0.0]
_written = [0.0]


def _write() -> None:
    assert _DIR is not None
    record = {
        "command": " ".join(sys.argv)[:120],
        "cpu_s": round(time.process_time(), 2),
        "passes": _passes,
        "gc_s": [round(s, 3) for s in _seconds],
        "longest_ms": [round(s * 1000, 1) for s in _longest],
    }
    path = os.path.join(_DIR, f"gc-{os.getpid()}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        json.dump(record, out)
    os.replace(path + ".tmp", path)


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took, generation = time.perf_counter() - _started[0], info["generation"]
    _passes[generation] += 1
    _seconds[generation] += took
    _longest[generation] = max(_longest[generation], took)
    if time.monotonic() - _written[0] > 2:
        _written[0] = time.monotonic()
        _write()


if _DIR:
    os.makedirs(_DIR, exist_ok=True)
    gc.callbacks.append(_timed)
    atexit.register(_write)

if os.environ.get("XFQ_GC_TRACE_DEFAULTS") == "1":
    import xfq.gc_policy

    xfq.gc_policy.tune_for_serving = lambda: None
