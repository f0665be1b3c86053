"""Appending to the audit trail inside a ledger write unit, so an action and its entry are
written together or not at all.

    def unit(tx: LedgerTx) -> None:
        ...  # the money movement
        record(tx, "finance:li", "settlement.closed", "2022-03-07", {"total_fen": 123400}, now)

    ledger.write(unit).result()
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from xfq.domain.audit import AuditEntry, next_entry
from xfq.ports import LedgerTx


def record(
    tx: LedgerTx,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    at: datetime,
) -> AuditEntry:
    """Append one entry after the log's last; the writer's transaction serialises appends."""
    entry = next_entry(tx.last_audit_entry(), actor, action, subject, details, at)
    tx.insert_audit_entry(entry)
    return entry
