"""The ledger's writer: one failing unit of work leaves no trace and spoils no other."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from servers.postgres_fixtures import LedgerDb
from xfq.adapters.sql.errors import StorageConflict
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import LedgerTx
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
NOW = datetime(2022, 3, 5, 2, 0, tzinfo=UTC)


def voucher(voucher_id: str) -> Voucher:
    return Voucher(
        voucher_id,
        "r6-retail-30-6",
        "r6",
        "retail",
        f"person-{voucher_id}",
        VoucherState.ISSUED,
        NOW,
        NOW,
        NOW + timedelta(days=7),
    )


def test_a_unit_that_fails_halfway_is_undone_and_its_batch_mates_commit(
    ledger_db: LedgerDb,
) -> None:
    ledger = SqlLedger(ledger_db.url)
    ledger.install_campaign(load_campaign(EXAMPLE), EXAMPLE.read_text(), NOW)
    gate = threading.Event()
    ledger.write(lambda _tx: gate.wait(10))  # holds the writer so the next three share a batch

    def broken(tx: LedgerTx) -> None:
        tx.insert_voucher(voucher("v-broken"), "k1")
        raise RuntimeError("a bug in the middle of a unit")

    first = ledger.write(lambda tx: tx.insert_voucher(voucher("v-first"), "k0"))
    failing = ledger.write(broken)
    last = ledger.write(lambda tx: tx.insert_voucher(voucher("v-last"), "k2"))
    gate.set()

    assert first.result(10) is None and last.result(10) is None
    with pytest.raises(RuntimeError, match="middle of a unit"):
        failing.result(10)
    reader = ledger.reader()
    assert reader.voucher("v-first") is not None and reader.voucher("v-last") is not None
    assert reader.voucher("v-broken") is None
    ledger.close()


def test_a_unit_the_database_refuses_spoils_neither_its_batch_nor_the_writer(
    ledger_db: LedgerDb,
) -> None:
    # PostgreSQL aborts the whole transaction at the first error; the batch is run again with
    # a savepoint per unit, so only the refused unit fails, as a domain error.
    ledger = SqlLedger(ledger_db.url)
    ledger.install_campaign(load_campaign(EXAMPLE), EXAMPLE.read_text(), NOW)
    ledger.write(lambda tx: tx.insert_voucher(voucher("v-0"), "k0")).result(10)
    gate = threading.Event()
    ledger.write(lambda _tx: gate.wait(10))
    first = ledger.write(lambda tx: tx.insert_voucher(voucher("v-1"), "k1"))
    duplicate = ledger.write(lambda tx: tx.insert_voucher(voucher("v-0"), "k0"))  # same id
    last = ledger.write(lambda tx: tx.insert_voucher(voucher("v-2"), "k2"))
    gate.set()

    assert first.result(10) is None and last.result(10) is None
    with pytest.raises(StorageConflict):
        duplicate.result(10)
    assert ledger_db.scalar("SELECT count(*) FROM vouchers") == 3
    assert ledger_db.scalar("SELECT count(*) FROM voucher_events") == 3
    ledger.close()
