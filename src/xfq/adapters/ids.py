"""Identifiers: random and unguessable, since a voucher id is something a person holds."""

from __future__ import annotations

import base64
import os
import threading

_ID_BYTES = 12  # 96 bits: guessing one of a million live vouchers takes ~2^76 tries


class RandomIds:
    """Random ids from a buffer of OS randomness refilled 64 KiB at a time.

    One `os.urandom` call per id is a system call that also gives up the GIL; next to a busy
    thread that cost ~20 µs per id here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def new_id(self, prefix: str) -> str:
        with self._lock:
            if self._at + _ID_BYTES > len(self._pool):
                self._pool, self._at = os.urandom(65536), 0
            raw = self._pool[self._at : self._at + _ID_BYTES]
            self._at += _ID_BYTES
        return f"{prefix}_{base64.urlsafe_b64encode(raw).decode()}"
