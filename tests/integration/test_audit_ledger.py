"""The audit trail on a real SQLite ledger: an entry is written with its change or not at all,
and many operators' changes committed in one batch still form one unbroken chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xfq.adapters.sql.audit import iter_entries
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.schema import sqlite_url
from xfq.domain.audit import verify_chain
from xfq.domain.errors import UnknownObject, XfqError
from xfq.ports import LedgerTx
from xfq.services import operations
from xfq.services.audit import record

AT = datetime(2022, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqlLedger]:
    opened = SqlLedger(sqlite_url(tmp_path / "ledger.db"))
    yield opened
    opened.close()


def test_a_unit_that_fails_after_recording_leaves_no_entry_and_no_change(
    ledger: SqlLedger,
) -> None:
    def unit(tx: LedgerTx) -> None:
        tx.insert_merchant("m1", "Shop", "retail", "pending", AT)
        record(tx, "op1", "merchant.enrolled", "m1", {"name": "Shop"}, AT)
        raise XfqError("the operator's change was refused after all")

    with pytest.raises(XfqError):
        ledger.write(unit).result()
    assert list(iter_entries(ledger.engine)) == []
    assert ledger.merchants() == []

    operations.enroll_merchant(ledger, "op1", "m1", "Shop", "retail", AT).result()
    entries = list(iter_entries(ledger.engine))
    assert [(e.seq, e.action) for e in entries] == [(1, "merchant.enrolled")]


def test_refused_operator_changes_are_not_audited(ledger: SqlLedger) -> None:
    operations.enroll_merchant(ledger, "op1", "m1", "Shop", "retail", AT).result()
    with pytest.raises(XfqError, match="already enrolled"):
        operations.enroll_merchant(ledger, "op1", "m1", "Shop", "retail", AT).result()
    with pytest.raises(UnknownObject, match="no merchant m2"):
        operations.set_merchant_status(ledger, "op1", "m2", "suspended", AT).result()
    assert [e.action for e in iter_entries(ledger.engine)] == ["merchant.enrolled"]


def test_changes_committed_together_chain_one_after_another(ledger: SqlLedger) -> None:
    enrolled = [
        operations.enroll_merchant(ledger, "op1", f"m{i}", f"Shop {i}", "retail", AT)
        for i in range(40)
    ]
    for future in enrolled:
        future.result()
    changes = [
        operations.set_merchant_status(ledger, f"op{i % 3}", f"m{i}", status, AT)
        for i in range(40)
        for status in ("enrolled", "suspended", "enrolled")
    ]
    for change in changes:
        change.result()
    entries = list(iter_entries(ledger.engine))
    assert verify_chain(entries) is None
    assert [e.seq for e in entries] == list(range(1, 161))
    actions = [e.action for e in entries if e.subject == "m7"]
    assert actions == [
        "merchant.enrolled",
        "merchant.approved",
        "merchant.suspended",
        "merchant.reinstated",
    ]
    assert {m.status for m in ledger.merchants()} == {"enrolled"}
