"""Rolled-over stock in Redis: each rollover move's vouchers added once, to one shard.

The ledger records a rollover first (services/rollover.py) and Redis gets its stock after; Redis
may be away then, and the ledger's "done" would stop the rollover from running again. So the
top-up is retried wherever it may have been missed: each housekeeping pass, each load (an engine
start, `xfq persist`) and `xfq reconcile --repair`. A plain INCRBY sent again could add twice (its
first answer lost after Redis applied it), so each move is added by `scripts.TOP_UP`, which puts
the move's key in the shard's `rolled` set in the same atomic call: the key is there exactly when
the stock was added, and a retry finds it and adds nothing. A load that writes the stock from the
ledger writes that set with it (`write_received`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from xfq.adapters.redis import connect
from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import Layout
from xfq.adapters.redis.scripts import TOP_UP_SCRIPT
from xfq.domain.rollover import RolloverMove

SHARD = 0  # rolled-over stock goes to one shard; claims homed on others borrow from it


def missing(redis: SyncRedis, layout: Layout, moves: Iterable[RolloverMove]) -> list[RolloverMove]:
    """The moves (of those that add stock) whose stock Redis has not received; one round trip."""
    wanted = [m for m in moves if m.adds_stock]
    if not wanted:
        return []
    received = redis.smismember(layout.rolled(SHARD), [m.key for m in wanted])
    return [m for m, done in zip(wanted, received, strict=True) if not done]


def top_up(redis: SyncRedis, layout: Layout, moves: Iterable[RolloverMove]) -> list[RolloverMove]:
    """Add the stock of each move Redis has not received yet; the moves added by this call."""
    added = []
    for m in missing(redis, layout, moves):
        assert m.into_type_id is not None, m
        args = (layout.tag(SHARD), m.into_type_id, m.added_count, m.key)
        if int(connect.run(redis, TOP_UP_SCRIPT, layout.stream(SHARD), *args)):
            added.append(m)
    return added


def write_received(pipe: Any, layout: Layout, moves: Sequence[RolloverMove]) -> None:
    """In a load's MULTI that sets shard `SHARD`'s stock from the ledger's `moves`: mark exactly
    those as received. A top-up another process made just before is overwritten with its mark
    (its move is then added again by a later retry), never kept twice."""
    pipe.delete(layout.rolled(SHARD))
    keys = [m.key for m in moves if m.adds_stock]
    if keys:
        pipe.sadd(layout.rolled(SHARD), *keys)
