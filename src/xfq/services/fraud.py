"""Running the cash-out fraud rules over the ledger, and the operators' review of their flags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from xfq.domain.errors import UnknownObject, XfqError
from xfq.domain.fraud import Flag, FlagStatus, FraudParams, scan
from xfq.ports import FraudStore, LedgerTx
from xfq.services.audit import record
from xfq.services.operations import set_merchant_status_unit


class FlagAlreadyReviewed(XfqError):
    code = "flag_already_reviewed"


class ReviewReasonMissing(XfqError):
    code = "review_reason_missing"


@dataclass(frozen=True)
class ScanResult:
    flags: list[Flag]
    new: int


def run_scan(store: FraudStore, at: datetime, params: FraudParams | None = None) -> ScanResult:
    """Run every rule and store the flags; running it again adds only what is new."""
    flags = scan(store.fraud_input(), params)
    return ScanResult(flags, store.store_flags(flags, at))


@dataclass(frozen=True)
class Review:
    flag_id: str
    decision: FlagStatus  # confirmed | dismissed
    reviewer: str
    reason: str
    suspend_merchant: bool = False


@dataclass(frozen=True)
class ReviewAnswer:
    flag_id: str
    status: FlagStatus
    merchant_id: str
    merchant_suspended: bool


def review_unit(review: Review, at: datetime) -> Callable[[LedgerTx], ReviewAnswer]:
    """Confirm or dismiss an open flag (and maybe suspend its merchant), audited, in one unit."""
    assert review.decision in (FlagStatus.CONFIRMED, FlagStatus.DISMISSED)
    if not review.reason.strip():
        raise ReviewReasonMissing("a review needs a reason an auditor can read")
    if review.suspend_merchant and review.decision is FlagStatus.DISMISSED:
        raise XfqError("a dismissed flag cannot suspend its merchant")

    def unit(tx: LedgerTx) -> ReviewAnswer:
        found = tx.fraud_flag_status(review.flag_id)
        if found is None:
            raise UnknownObject(f"no fraud flag {review.flag_id}")
        status, merchant_id = found
        if not tx.review_fraud_flag(
            review.flag_id, review.decision.value, review.reviewer, at, review.reason
        ):
            raise FlagAlreadyReviewed(f"fraud flag {review.flag_id} was {status} already")
        details = {"merchant_id": merchant_id, "reason": review.reason}
        action = f"flag.{review.decision.value}"
        record(tx, review.reviewer, action, review.flag_id, details, at)
        suspended = False
        if review.suspend_merchant and tx.merchant_status(merchant_id) != "suspended":
            reason = f"fraud flag {review.flag_id} confirmed"
            set_merchant_status_unit(tx, review.reviewer, merchant_id, "suspended", at, reason)
            suspended = True
        return ReviewAnswer(review.flag_id, review.decision, merchant_id, suspended)

    return unit
