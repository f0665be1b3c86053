"""What Redis issued, read from the shard streams once and then only what is new.

A process that answers a sold-out type from memory must still give a retry of an issued key its
voucher; this is where it finds it. Read incrementally, so the cost over a whole round is one
pass over the streams per process, however many types sell out.

Each issued claim is kept as two short strings (its key and its voucher), not as tuples of six:
a process holds every voucher of the round once its types sell out (126,700 in the reference
round), ~240 bytes each instead of ~560.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import Layout

# voucher id, issued at, valid from, valid until (µs)
Issued = tuple[str, int, int, int]
READ_BATCH = 5000


def claim_key(person_id: str, idempotency_key: str) -> str:
    """One string for a person's claim; the length first keeps it unambiguous whatever either
    part holds."""
    return f"{len(person_id)}:{person_id}:{idempotency_key}"


def packed(voucher_id: str, at_us: str, valid_from_us: str, valid_until_us: str) -> str:
    return f"{voucher_id}|{at_us}|{valid_from_us}|{valid_until_us}"


def unpacked(issued: str) -> Issued:
    voucher_id, at_us, valid_from_us, valid_until_us = issued.rsplit("|", 3)
    return voucher_id, int(at_us), int(valid_from_us), int(valid_until_us)


class IssuedLog:
    def __init__(self, redis: SyncRedis, layout: Layout) -> None:
        self._redis = redis
        self._layout = layout
        self._lock = threading.Lock()
        self._last = ["-"] * layout.shards
        self._by_type: dict[str, dict[str, str]] = defaultdict(dict)

    def of_type(self, type_id: str) -> dict[str, str]:
        """Every claim of `type_id` issued so far: `packed` voucher by `claim_key`."""
        with self._lock:
            for shard in range(self._layout.shards):
                self._catch_up(shard)
            return self._by_type[type_id]

    def _catch_up(self, shard: int) -> None:
        stream = self._layout.stream(shard)
        while True:
            chunk: Any = self._redis.xrange(stream, min=self._last[shard], count=READ_BATCH)
            for entry_id, f in chunk:
                if "v" in f:
                    issued = packed(f["v"], f["at"], f["vf"], f["vu"])
                    self._by_type[f["t"]][claim_key(f["p"], f["k"])] = issued
                self._last[shard] = "(" + entry_id
            if len(chunk) < READ_BATCH:
                return
