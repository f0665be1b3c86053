"""How xfq's processes use Python's cyclic garbage collector.

Reference counting frees every object that is not part of a reference cycle whether the cyclic
collector runs or not. The collector exists for cycles, and each of its full passes walks every
live container object, so a process that builds up millions of long-lived objects pays for
those walks again and again:
- the direct demo (a bounded batch job: a population, its vouchers, the engine's counters):
  24 of 69 CPU seconds went to the collector, and its peak memory was the same (0.64 GB) with
  the collector paused, so it runs paused (`paused_gc`);
- an API worker at an opening (per-person state for every citizen seen): in a 200,000-citizen
  rehearsal each worker spent 8% of its CPU in the collector and stopped for up to 0.95 s in
  one full pass, in the middle of the wave. Workers keep the collector but tune it
  (`tune_for_serving`). Figures before and after: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Young passes every 50,000 new container objects (default 700); a middle pass every 20 young
# ones; a full pass only after 100 middle ones (and, as always, only once the objects that
# survived since the last full pass are a quarter of those it kept). Cycles made by requests
# die young and are still found by the young passes.
SERVING_THRESHOLDS = (50_000, 20, 100)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with the cyclic collector off; it is switched back on when the block ends
    (not run then: the block's objects are mostly still alive, a pass would walk them all)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def tune_for_serving() -> None:
    """For a long-running API process, once its app is built: what start-up made (modules, the
    campaign, the app) is frozen out of every later pass, and passes are rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
