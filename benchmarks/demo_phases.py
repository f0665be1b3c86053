"""Where `xfq demo --direct` spends its time: wall and CPU seconds of each phase, peak memory.

    .venv/bin/python benchmarks/demo_phases.py [--population 300000]

Runs the same `run_demo` as `xfq demo --direct` (output discarded), timing each phase function
it calls, and the wait for the forked child (fraud scan, spending feed) after reconciliation.
CPU is the whole process's (every thread), so a phase whose ledger writer runs beside
it can show more CPU than wall time. The fraud scan and the spending feed run in a forked child
during reconciliation (`gather`); only the parent's wait for them is counted.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from xfq import demo, forked

PHASES = [
    "make_population",
    "enroll_all",
    "run_grab",
    "plant_fraud",
    "run_week",
    "gather",
    "reconcile",
]


def timed(name: str, fn: Callable[..., Any], into: dict[str, tuple[float, float]]) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            into[name] = (time.perf_counter() - wall, time.process_time() - cpu)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=2022)
    args = parser.parse_args()
    phases: dict[str, tuple[float, float]] = {}
    for name in PHASES:
        setattr(demo, name, timed(name, getattr(demo, name), phases))

    def start_forked(work: Callable[[], Any]) -> Callable[[], Any]:
        wait: Callable[[], Any] = timed("wait for child", forked.start_forked(work), phases)
        return wait

    demo.start_forked = start_forked  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as workdir, open("/dev/null", "w") as sink:
        wall, cpu = time.perf_counter(), time.process_time()
        outcome = demo.run_demo(
            demo.EXAMPLE, Path(workdir) / "demo", args.population, 200, args.seed, "r6",
            Console(file=sink),
        )  # fmt: skip
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for name, (w, c) in phases.items():
        print(f"{name:16} wall {w:6.2f} s   cpu {c:6.2f} s")
    rest = wall - sum(w for w, _ in phases.values())
    print(f"{'the rest':16} wall {rest:6.2f} s")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{'whole demo':16} wall {wall:6.2f} s   cpu {cpu:6.2f} s   peak RSS {peak_gb:.2f} GB")
    print(f"requests {outcome.grab.requests:,}, every invariant held: {outcome.ok}")


if __name__ == "__main__":
    main()
