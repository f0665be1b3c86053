"""At the merchant's till: quote an order, redeem a voucher, reverse it on a refund."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from xfq.domain.campaign import Campaign
from xfq.domain.checkout import CheckoutCode, Order, Quote, best_quote, quote
from xfq.domain.redemption import Redemption, RedemptionState
from xfq.domain.voucher import VoucherState
from xfq.ports import IdSource, Ledger, LedgerReader, LedgerTx, TillContext


@dataclass(frozen=True)
class RedeemRequest:
    merchant_id: str
    person_id: str  # from the citizen's signed code; must own the voucher
    voucher_id: str
    order_ref: str
    order: Order
    idempotency_key: str


@dataclass(frozen=True)
class RedeemAnswer:
    code: CheckoutCode
    message: str
    redemption: Redemption | None = None


def quote_order(
    reader: LedgerReader,
    campaign: Campaign,
    now: datetime,
    merchant_id: str,
    person_id: str,
    order: Order,
    voucher_id: str | None = None,
) -> Quote:
    """What the customer's best voucher (or the one named) takes off the order."""
    merchant = reader.merchant(merchant_id)
    if merchant is None:
        return Quote(CheckoutCode.NOT_FOUND, f"unknown merchant {merchant_id}")
    owned = reader.vouchers_of(person_id)
    if voucher_id is not None:
        chosen = [v for v in owned if v.id == voucher_id]
        if not chosen:
            return Quote(CheckoutCode.NOT_FOUND, "no such voucher in this wallet")
        vtype = campaign.voucher_type(chosen[0].type_id)[1]
        return quote(chosen[0], vtype, merchant, order, campaign.checkout, now)
    candidates = [
        (v, campaign.voucher_type(v.type_id)[1]) for v in owned if v.state is VoucherState.ISSUED
    ]
    return best_quote(candidates, merchant, order, campaign.checkout, now)


def submit_redeem(
    ledger: Ledger, campaign: Campaign, ids: IdSource, now: datetime, request: RedeemRequest
) -> Future[RedeemAnswer]:
    """Redeem inside one ledger transaction, so two tills cannot both use one voucher."""
    return ledger.write(redeem_unit(campaign, ids, now, request))


def redeem_unit(
    campaign: Campaign, ids: IdSource, now: datetime, request: RedeemRequest
) -> Callable[[LedgerTx], RedeemAnswer]:
    """The redemption as a unit of work for the ledger's writer (see `Ledger.send`)."""

    def unit(tx: LedgerTx) -> RedeemAnswer:
        if campaign.checkout.one_voucher_per_order:
            tx.lock_order(request.merchant_id, request.order_ref)
        context = tx.till_context(
            request.merchant_id, request.idempotency_key, request.voucher_id, request.order_ref
        )
        if context.prior_redemption_id is not None:
            prior = tx.redemption(context.prior_redemption_id)
            assert prior is not None
            return _repeat(prior, request)
        refusal, q = _check(tx, campaign, now, request, context)
        if refusal is not None:
            return refusal
        assert q is not None and q.ok
        redemption = Redemption(
            id=ids.new_id("rd"),
            voucher_id=request.voucher_id,
            merchant_id=request.merchant_id,
            idempotency_key=request.idempotency_key,
            order_ref=request.order_ref,
            list_price_fen=request.order.list_price_fen,
            merchant_promotion_fen=request.order.merchant_promotion_fen,
            threshold_base_fen=q.threshold_base_fen,
            discount_fen=q.discount_fen,
            customer_pays_fen=q.customer_pays_fen,
            redeemed_at=now,
            state=RedemptionState.POSTED,
        )
        moved = tx.redeem_voucher(redemption)
        assert moved, "voucher changed inside the transaction"
        return RedeemAnswer(CheckoutCode.OK, q.message, redemption)

    return unit


def _check(
    tx: LedgerTx, campaign: Campaign, now: datetime, request: RedeemRequest, context: TillContext
) -> tuple[RedeemAnswer | None, Quote | None]:
    voucher = context.voucher
    if voucher is None or voucher.person_id != request.person_id:
        return RedeemAnswer(CheckoutCode.NOT_FOUND, "no such voucher for this person"), None
    merchant = tx.merchant(request.merchant_id)
    if merchant is None:
        return RedeemAnswer(CheckoutCode.NOT_FOUND, f"unknown merchant {request.merchant_id}"), None
    if campaign.checkout.one_voucher_per_order and context.order_taken:
        message = f"order {request.order_ref} already has a government voucher"
        return RedeemAnswer(CheckoutCode.ONE_VOUCHER_PER_ORDER, message), None
    vtype = campaign.voucher_type(voucher.type_id)[1]
    q = quote(voucher, vtype, merchant, request.order, campaign.checkout, now)
    if not q.ok:
        return RedeemAnswer(q.code, q.message), None
    return None, q


def _repeat(prior: Redemption, request: RedeemRequest) -> RedeemAnswer:
    same = (
        prior.voucher_id == request.voucher_id
        and prior.order_ref == request.order_ref
        and prior.list_price_fen == request.order.list_price_fen
        and prior.merchant_promotion_fen == request.order.merchant_promotion_fen
    )
    if not same:
        return RedeemAnswer(
            CheckoutCode.IDEMPOTENCY_CONFLICT,
            "this idempotency key was used for a different redemption",
        )
    return RedeemAnswer(CheckoutCode.OK, "already redeemed with this key", prior)
