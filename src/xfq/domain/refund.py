"""What a refund does to a redemption and its voucher, by the campaign's refund policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from xfq.domain.campaign import PartialRefund, RefundPolicy
from xfq.domain.voucher import VoucherEvent


class RefundOutcome(StrEnum):
    RESTORED = "restored"  # redemption reversed, voucher back in the wallet
    LAPSED = "lapsed"  # redemption reversed, voucher does not come back (expired or by policy)
    KEPT = "kept"  # redemption stands (partial refund): the voucher stays used


@dataclass(frozen=True)
class RefundDecision:
    outcome: RefundOutcome
    reason: str

    @property
    def reverses_redemption(self) -> bool:
        return self.outcome is not RefundOutcome.KEPT

    @property
    def voucher_event(self) -> VoucherEvent | None:
        return {
            RefundOutcome.RESTORED: VoucherEvent.RESTORE,
            RefundOutcome.LAPSED: VoucherEvent.LAPSE,
            RefundOutcome.KEPT: None,
        }[self.outcome]


def decide_refund(
    policy: RefundPolicy,
    threshold_fen: int,
    base_fen: int,
    refund_fen: int,
    valid_until: datetime,
    now: datetime,
) -> RefundDecision:
    """`refund_fen` is the value of the goods returned, on the same base as the threshold.

    Returning everything (`refund_fen == base_fen`) is a full refund, which always reverses the
    redemption: the city never pays a discount on an order that was wholly refunded.
    """
    assert 0 < refund_fen <= base_fen, (refund_fen, base_fen)
    full = refund_fen == base_fen
    if full and not policy.full_refund_restores:
        return RefundDecision(RefundOutcome.LAPSED, "full refund; policy does not restore vouchers")
    if full:
        restore, why = True, "full refund"
    elif policy.partial is PartialRefund.RESTORE:
        restore, why = True, "partial refund, policy restores the voucher"
    elif policy.partial is PartialRefund.FORFEIT:
        restore, why = False, "partial refund, policy forfeits the voucher"
    else:
        restore = base_fen - refund_fen < threshold_fen
        why = (
            "partial refund leaves the order below the threshold"
            if restore
            else "partial refund leaves the order above the threshold"
        )
    if not restore:
        return RefundDecision(RefundOutcome.KEPT, why)
    if now >= valid_until:
        return RefundDecision(RefundOutcome.LAPSED, f"{why}; the voucher's validity has ended")
    return RefundDecision(RefundOutcome.RESTORED, why)
