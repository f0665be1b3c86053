"""Reversing a redemption when the merchant refunds the order, by the campaign's policy."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from xfq.domain.campaign import Campaign
from xfq.domain.money import format_yuan
from xfq.domain.redemption import Redemption, RedemptionState, Refund
from xfq.domain.refund import RefundOutcome, decide_refund
from xfq.domain.voucher import VoucherState
from xfq.ports import IdSource, Ledger, LedgerTx


class RefundCode(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    ALREADY_REVERSED = "already_reversed"
    INVALID_REFUND = "invalid_refund"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"


@dataclass(frozen=True)
class RefundRequest:
    merchant_id: str
    redemption_id: str
    refund_fen: int  # value of the goods returned, on the same base as the threshold
    idempotency_key: str


@dataclass(frozen=True)
class RefundAnswer:
    code: RefundCode
    message: str
    outcome: RefundOutcome | None = None
    refund: Refund | None = None


def submit_refund(
    ledger: Ledger, campaign: Campaign, ids: IdSource, now: datetime, request: RefundRequest
) -> Future[RefundAnswer]:
    def unit(tx: LedgerTx) -> RefundAnswer:
        # Locked first: a refund committed meanwhile by another process is then seen below.
        redemption = tx.redemption_to_change(request.redemption_id)
        prior = tx.refund_by_key(request.merchant_id, request.idempotency_key)
        if prior is not None:
            return _repeat(prior, request)
        if redemption is None or redemption.merchant_id != request.merchant_id:
            return RefundAnswer(RefundCode.NOT_FOUND, "no such redemption at this merchant")
        if redemption.state is RedemptionState.REVERSED:
            return RefundAnswer(RefundCode.ALREADY_REVERSED, "this redemption was already reversed")
        return _apply(tx, campaign, ids, now, request, redemption)

    return ledger.write(unit)


def _apply(
    tx: LedgerTx,
    campaign: Campaign,
    ids: IdSource,
    now: datetime,
    request: RefundRequest,
    redemption: Redemption,
) -> RefundAnswer:
    left_fen = redemption.threshold_base_fen - tx.refunded_fen(redemption.id)
    if not 0 < request.refund_fen <= left_fen:
        return RefundAnswer(
            RefundCode.INVALID_REFUND,
            f"a refund must be more than 0.00 and at most {format_yuan(left_fen)} "
            f"(what is left of the order), not {format_yuan(request.refund_fen)}",
        )
    voucher = tx.voucher(redemption.voucher_id)
    assert voucher is not None
    vtype = campaign.voucher_type(voucher.type_id)[1]
    decision = decide_refund(
        campaign.refunds,
        vtype.threshold_fen,
        left_fen,
        request.refund_fen,
        voucher.valid_until,
        now,
    )
    refund = Refund(
        id=ids.new_id("rf"),
        redemption_id=redemption.id,
        merchant_id=request.merchant_id,
        idempotency_key=request.idempotency_key,
        refund_fen=request.refund_fen,
        outcome=decision.outcome.value,
        refunded_at=now,
    )
    event = decision.voucher_event
    if event is not None:
        assert tx.reverse_redemption(redemption.id, now)
        assert tx.move_voucher(voucher.id, VoucherState.REDEEMED, event, now, refund.id)
    tx.insert_refund(refund)
    return RefundAnswer(RefundCode.OK, decision.reason, decision.outcome, refund)


def _repeat(prior: Refund, request: RefundRequest) -> RefundAnswer:
    if prior.redemption_id != request.redemption_id or prior.refund_fen != request.refund_fen:
        return RefundAnswer(
            RefundCode.IDEMPOTENCY_CONFLICT, "this idempotency key was used for a different refund"
        )
    return RefundAnswer(
        RefundCode.OK, "already refunded with this key", RefundOutcome(prior.outcome), prior
    )
