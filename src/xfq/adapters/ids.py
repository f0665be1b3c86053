"""Identifiers: unguessable, since a voucher id is something a person holds, and in time order.

An id is its prefix, then 6 bytes of milliseconds since the epoch and 12 random bytes in
lower-case base32hex, whose alphabet sorts as the numbers it encodes (29 characters). The
random part keeps guessing hopeless (96 bits: one of a million live vouchers takes ~2^76
tries); the time part makes ids issued later sort later, so inserts into the ledger's B-tree
indexes on ids land on the few rightmost pages instead of a random page each (SQLite and
PostgreSQL alike). The time is the machine's, not the campaign's: it orders keys and means
nothing in the domain.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable

_RANDOM_BYTES = 12
_TIME_BYTES = 6  # milliseconds: enough until the year 10889


class RandomIds:
    """Ids from a buffer of OS randomness refilled 64 KiB at a time.

    One `os.urandom` call per id is a system call that also gives up the GIL; next to a busy
    thread that cost ~20 µs per id here.
    """

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def new_id(self, prefix: str) -> str:
        with self._lock:
            if self._at + _RANDOM_BYTES > len(self._pool):
                self._pool, self._at = os.urandom(65536), 0
            raw = self._pool[self._at : self._at + _RANDOM_BYTES]
            self._at += _RANDOM_BYTES
        ms = (self._now_ns() // 1_000_000).to_bytes(_TIME_BYTES, "big")
        return f"{prefix}_{base64.b32hexencode(ms + raw).decode().rstrip('=').lower()}"
