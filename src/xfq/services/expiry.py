"""Expiring vouchers whose validity has ended; safe to run as often as wanted."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime

from xfq.ports import Ledger, LedgerTx


def expire(ledger: Ledger, now: datetime) -> Future[int]:
    def unit(tx: LedgerTx) -> int:
        return tx.expire_due(now)

    return ledger.write(unit)
