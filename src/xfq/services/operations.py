"""Operators' changes to merchants and rounds, each written with its audit entry in one unit."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime

from xfq.domain.errors import UnknownObject, XfqError
from xfq.ports import Ledger, LedgerTx
from xfq.services.audit import record

# status -> the audit action of moving a merchant into it
_STATUS_ACTIONS = {"enrolled": "merchant.approved", "suspended": "merchant.suspended"}


def enroll_merchant(
    ledger: Ledger, actor: str, merchant_id: str, name: str, category: str, at: datetime
) -> Future[None]:
    """A merchant enrolled as `pending`: it redeems once approved."""

    def unit(tx: LedgerTx) -> None:
        if tx.merchant_status(merchant_id) is not None:
            raise XfqError(f"merchant {merchant_id} is already enrolled")
        tx.insert_merchant(merchant_id, name, category, "pending", at)
        details = {"name": name, "category": category}
        record(tx, actor, "merchant.enrolled", merchant_id, details, at)

    return ledger.write(unit)


def set_merchant_status_unit(
    tx: LedgerTx,
    actor: str,
    merchant_id: str,
    status: str,
    at: datetime,
    reason: str = "",
    key_id: str = "",
) -> str:
    """Move a merchant to `status` and audit it; the status it had before."""
    before = tx.merchant_status(merchant_id)
    if before is None:
        raise UnknownObject(f"no merchant {merchant_id}")
    tx.set_merchant_status(merchant_id, status)
    action = _STATUS_ACTIONS[status]
    if status == "enrolled" and before == "suspended":
        action = "merchant.reinstated"
    details = {"from": before, "to": status} | ({"reason": reason} if reason else {})
    details |= {"key_id": key_id} if key_id else {}
    record(tx, actor, action, merchant_id, details, at)
    return before


def set_merchant_status(
    ledger: Ledger, actor: str, merchant_id: str, status: str, at: datetime
) -> Future[str]:
    return ledger.write(lambda tx: set_merchant_status_unit(tx, actor, merchant_id, status, at))


def approve_merchant(
    ledger: Ledger, actor: str, merchant_id: str, key_id: str, secret: str, at: datetime
) -> Future[None]:
    """Approve a merchant and give it an API key, in one write: the audit entry names the key
    (never its secret), so a leaked key can be traced to the approval that issued it."""

    def unit(tx: LedgerTx) -> None:
        set_merchant_status_unit(tx, actor, merchant_id, "enrolled", at, key_id=key_id)
        tx.insert_merchant_key(key_id, merchant_id, secret, at)

    return ledger.write(unit)


def revoke_merchant_key(
    ledger: Ledger, actor: str, merchant_id: str, key_id: str, at: datetime
) -> Future[datetime]:
    """Revoke one of a merchant's API keys (its other keys keep working); when it was revoked.
    Revoking a revoked key changes nothing and is not audited again."""

    def unit(tx: LedgerTx) -> datetime:
        if tx.merchant_status(merchant_id) is None:
            raise UnknownObject(f"no merchant {merchant_id}")
        key = tx.merchant_key(key_id)
        if key is None or key[0] != merchant_id:
            raise UnknownObject(f"merchant {merchant_id} has no API key {key_id}")
        if key[1] is not None:
            return key[1]
        tx.revoke_merchant_key(key_id, at)
        record(tx, actor, "merchant.key_revoked", merchant_id, {"key_id": key_id}, at)
        return at

    return ledger.write(unit)


def record_window(
    ledger: Ledger,
    actor: str,
    round_id: str,
    opens_at: datetime,
    closes_at: datetime,
    action: str,
    at: datetime,
) -> Future[None]:
    """An operator opened a round early or cancelled its claims."""

    def unit(tx: LedgerTx) -> None:
        tx.insert_round_window(round_id, opens_at, closes_at, action, actor, at)
        details = {"opens_at": opens_at.isoformat(), "claim_closes_at": closes_at.isoformat()}
        verb = "round.opened" if action == "open" else "round.cancelled"
        record(tx, actor, verb, round_id, details, at)

    return ledger.write(unit)
