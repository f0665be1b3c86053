"""The persister: moves what the claim script streamed into the ledger, idempotently.

One consumer group per shard stream. A batch of entries is inserted in one ledger write (a
voucher the ledger holds already is skipped, so a batch delivered twice changes nothing) and
acknowledged only after the ledger's commit. After a restart the consumer first re-reads what it
had been given but not acknowledged; entries of a consumer that went away are claimed after
`STALE_MS`. Stock moves between shards (`m` entries) are completed here if their lender died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from redis.exceptions import ResponseError

from xfq.adapters.redis import connect
from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import GROUP, Layout
from xfq.adapters.redis.scripts import BORROW_SCRIPT
from xfq.adapters.sql.times import from_us
from xfq.domain.campaign import Campaign
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import Ledger, LedgerTx

log = logging.getLogger(__name__)
STALE_MS = 30_000
COMMIT_TIMEOUT_S = 60.0
Entry = tuple[str, dict[str, str]]


def voucher_of(campaign: Campaign, fields: dict[str, str]) -> tuple[Voucher, str]:
    """The voucher a stream entry records, and its claim's idempotency key."""
    rnd, vtype = campaign.voucher_type(fields["t"])
    voucher = Voucher(
        id=fields["v"],
        type_id=vtype.id,
        round_id=rnd.id,
        category=vtype.category,
        person_id=fields["p"],
        state=VoucherState.ISSUED,
        issued_at=from_us(int(fields["at"])),
        valid_from=from_us(int(fields["vf"])),
        valid_until=from_us(int(fields["vu"])),
    )
    return voucher, fields["k"]


def insert_missing(claims: list[tuple[Voucher, str]]) -> Callable[[LedgerTx], int]:
    """A ledger unit inserting the vouchers it does not hold yet; the number inserted."""

    def unit(tx: LedgerTx) -> int:
        return tx.insert_new_vouchers(claims)

    return unit


def complete_move(redis: SyncRedis, layout: Layout, fields: dict[str, str]) -> None:
    to = int(fields["to"])
    connect.run(
        redis,
        BORROW_SCRIPT,
        layout.stream(to),
        layout.tag(to),
        fields["t"],
        fields["n"],
        fields["m"],
    )


def entries(redis: SyncRedis, stream: str, batch: int = 1000) -> Iterator[Entry]:
    """Every entry of a stream, oldest first."""
    start = "-"
    while True:
        chunk: Any = redis.xrange(stream, min=start, count=batch)
        yield from chunk
        if len(chunk) < batch:
            return
        start = "(" + chunk[-1][0]


class Persister:
    def __init__(
        self,
        redis: SyncRedis,
        layout: Layout,
        campaign: Campaign,
        ledger: Ledger,
        consumer: str = "persister",
        batch: int = 1000,
        stale_ms: int = STALE_MS,
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._campaign = campaign
        self._ledger = ledger
        self._consumer = consumer
        self._batch = batch
        self._stale_ms = stale_ms
        self._ready = False
        self._taken_over_at = 0.0  # time.monotonic() of the last take-over pass

    def _prepare(self) -> None:
        if self._ready:
            return
        for shard in range(self._layout.shards):
            stream = self._layout.stream(shard)
            try:
                self._redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
            self._take_over(stream)
        self._ready = True
        self._taken_over_at = time.monotonic()

    def _take_over_again(self) -> None:
        """A consumer that died after we started leaves entries only a take-over moves."""
        if time.monotonic() - self._taken_over_at < self._stale_ms / 1000:
            return
        for shard in range(self._layout.shards):
            self._take_over(self._layout.stream(shard))
        self._taken_over_at = time.monotonic()

    def _take_over(self, stream: str) -> None:
        """Entries given to a consumer that went away: ours now, re-read as our pending."""
        cursor = "0-0"
        while True:
            reply: Any = self._redis.xautoclaim(
                stream, GROUP, self._consumer, self._stale_ms, cursor, self._batch
            )
            cursor = str(reply[0])
            if cursor == "0-0":
                return

    def step(self, block_ms: int | None = None) -> int:
        """Move what is waiting (our unacknowledged entries first); the number of entries."""
        self._prepare()
        self._take_over_again()
        moved = 0
        block = block_ms if self._layout.shards == 1 else None
        for shard in range(self._layout.shards):
            stream = self._layout.stream(shard)
            while got := self._read(stream, "0", None):
                moved += self._store(stream, got)
            got = self._read(stream, ">", block)
            if got:
                moved += self._store(stream, got)
        return moved

    def drain(self) -> int:
        """Move everything waiting now; the number of entries moved."""
        total = 0
        while moved := self.step():
            total += moved
        return total

    def run(self, stop: threading.Event, block_ms: int = 500) -> None:
        """Move entries until `stop` is set, riding out restarts of Redis and the ledger."""
        pause_s = 0.1
        while not stop.is_set():
            try:
                moved = self.step(block_ms)
                pause_s = 0.1
            except Exception as error:  # keep going: a lost server comes back
                log.warning("persister: %s; again in %.1f s", error, pause_s)
                self._ready = False
                stop.wait(pause_s)
                pause_s = min(pause_s * 2, 5.0)
                continue
            if not moved and self._layout.shards > 1:
                stop.wait(block_ms / 1000)

    def _read(self, stream: str, start: str, block_ms: int | None) -> list[Entry]:
        reply: Any = self._redis.xreadgroup(
            GROUP, self._consumer, {stream: start}, count=self._batch, block=block_ms
        )
        if not reply:
            return []
        # RESP2 gives [[stream, entries]]; an acknowledged entry re-read has no fields
        got: list[Entry] = reply[0][1]
        if start == "0" and got and not got[-1][1] and all(not f for _i, f in got):
            self._redis.xack(stream, GROUP, *(i for i, _f in got))
            return []
        return got

    def _store(self, stream: str, got: list[Entry]) -> int:
        claims = []
        for _id, fields in got:
            if "v" in fields:
                claims.append(voucher_of(self._campaign, fields))
            elif "m" in fields:
                complete_move(self._redis, self._layout, fields)
        if claims:
            self._ledger.write(insert_missing(claims)).result(COMMIT_TIMEOUT_S)
        self._redis.xack(stream, GROUP, *(i for i, _f in got))
        return len(got)
