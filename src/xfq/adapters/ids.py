"""Identifiers: random and unguessable, since a voucher id is something a person holds."""

from __future__ import annotations

import base64
import os
import threading

_ID_BYTES = 12  # 96 bits: guessing one of a million live vouchers takes ~2^76 tries
_ID_CHARS = _ID_BYTES * 4 // 3  # a multiple of 3 bytes: no padding, no partial character
_POOL_IDS = 5461  # ids per 64 KiB of randomness


class RandomIds:
    """Random ids from a buffer of OS randomness refilled 64 KiB at a time.

    One `os.urandom` call per id is a system call that also gives up the GIL; next to a busy
    thread that cost ~20 µs per id here. The buffer is encoded whole: 12 bytes are 16 base64
    characters, so each id is a slice of the text.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = ""
        self._at = 0

    def new_id(self, prefix: str) -> str:
        with self._lock:
            if self._at + _ID_CHARS > len(self._pool):
                raw = os.urandom(_POOL_IDS * _ID_BYTES)
                self._pool, self._at = base64.urlsafe_b64encode(raw).decode(), 0
            text = self._pool[self._at : self._at + _ID_CHARS]
            self._at += _ID_CHARS
        return f"{prefix}_{text}"
