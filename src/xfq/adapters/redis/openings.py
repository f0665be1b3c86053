"""When each round opens, as Redis has it, known in this process for a second at a time.

Before 10:00:00 people press early; their `not_open` answers need no store round trip when the
process knows the opening is still ahead. An operator can open a round early from any process
(`Container.move_window` writes the window to Redis), and openings only ever move earlier. So a
process that read the openings from Redis in the last second and finds one still ahead may
answer `not_open` itself: at worst, for up to a second after an early opening elsewhere, it
refuses claims Redis would have taken. No voucher of a round that has not opened exists, so no
repeated Idempotency-Key can be owed one. Once the reading is older than a second, claims go to
Redis again while one thread reads the openings anew. A round a fresh reading found open stays
open (openings only move earlier): its claims go to Redis without asking the reading again, and
once every round has opened nothing is read any more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import Layout
from xfq.adapters.sql.times import from_us

MAX_AGE_S = 1.0


class Openings:
    def __init__(
        self,
        redis: SyncRedis,
        layout: Layout,
        round_ids: list[str],
        max_age_s: float = MAX_AGE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._round_ids = round_ids
        self._max_age_s = max_age_s
        self._monotonic = monotonic
        self._opens: dict[str, datetime] = {}
        self._opened: set[str] = set()  # rounds a fresh reading found open
        self._read_at = float("-inf")
        self._reading = threading.Lock()
        self._moves = 0  # windows this process moved: a reading begun before one is void

    def ahead(self, round_id: str, now: datetime) -> datetime | None:
        """The round's opening when it is still ahead of `now` by a reading of the last second;
        None when it is not, or when no fresh reading is at hand (one is started)."""
        if round_id in self._opened:
            return None
        if self._monotonic() - self._read_at > self._max_age_s:
            self._read_later()
            return None
        opens = self._opens.get(round_id)
        if opens is None:
            return None
        if now < opens:
            return opens
        self._opened.add(round_id)
        return None

    def moved(self) -> None:
        """This process has just written new windows to Redis: ask Redis until read anew."""
        self._moves += 1
        self._read_at = float("-inf")
        self._opened.clear()

    def _read_later(self) -> None:
        if self._reading.acquire(blocking=False):  # one reader at a time
            threading.Thread(target=self._read, daemon=True, name="xfq-openings").start()

    def _read(self) -> None:
        try:
            started, moves = self._monotonic(), self._moves
            pipe = self._redis.pipeline(transaction=False)
            for round_id in self._round_ids:
                pipe.hget(self._layout.round(0, round_id), "opens")
            values = pipe.execute()
            opens = {
                r: from_us(int(v))
                for r, v in zip(self._round_ids, values, strict=True)
                if v is not None
            }
            if moves == self._moves:
                self._opens = opens
                self._read_at = started  # a reading is as old as the moment it was asked for
        except Exception:  # Redis away: no reading, claims keep going to Redis
            pass
        finally:
            self._reading.release()
