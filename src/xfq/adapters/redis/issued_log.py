"""What Redis issued, read from the shard streams once and then only what is new.

A process that answers a sold-out type from memory must still give a retry of an issued key its
voucher; this is where it finds it. Read incrementally, so the cost over a whole round is one
pass over the streams per process, however many types sell out.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import Layout

# voucher id, issued at, valid from, valid until (µs, as stored)
Issued = tuple[str, str, str, str]
READ_BATCH = 5000


class IssuedLog:
    def __init__(self, redis: SyncRedis, layout: Layout) -> None:
        self._redis = redis
        self._layout = layout
        self._lock = threading.Lock()
        self._last = ["-"] * layout.shards
        self._by_type: dict[str, dict[tuple[str, str], Issued]] = defaultdict(dict)

    def of_type(self, type_id: str) -> dict[tuple[str, str], Issued]:
        """Every claim of `type_id` issued so far, by (person, idempotency key)."""
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
                    self._by_type[f["t"]][(f["p"], f["k"])] = (f["v"], f["at"], f["vf"], f["vu"])
                self._last[shard] = "(" + entry_id
            if len(chunk) < READ_BATCH:
                return
