"""What a merchant's till calls, signed with its API key: quote, redeem, refund."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from xfq.api.blocking import read_ledger
from xfq.api.deps import ContainerDep, IdempotencyKey, MerchantDep
from xfq.api.schemas import (
    PROBLEM_RESPONSES,
    OrderIn,
    QuoteIn,
    QuoteOut,
    RedeemIn,
    RedeemOut,
    RedemptionOut,
    RefundIn,
    RefundOut,
)
from xfq.bootstrap import Container
from xfq.domain.checkout import CheckoutCode, Order, Quote
from xfq.domain.errors import IdempotencyConflict, UnknownObject
from xfq.domain.redemption import Redemption
from xfq.domain.till_code import TillCode, read_code
from xfq.services.checkout import RedeemRequest, quote_order, submit_redeem
from xfq.services.refund import RefundCode, RefundRequest, submit_refund

router = APIRouter(prefix="/v1/merchant", tags=["merchants"], responses=PROBLEM_RESPONSES)
RedemptionId = Annotated[str, Path(min_length=1, max_length=64)]


def _order(order: OrderIn) -> Order:
    return Order(order.list_price_fen, order.merchant_promotion_fen)


def _read(container: Container, code: str) -> TillCode:
    read = read_code(container.till_key, code, container.clock.now())
    if isinstance(read, TillCode):
        return read
    messages = {
        "code_expired": "the code has lapsed: ask the customer to refresh it",
        "code_forged": "this is not a code xfq issued",
        "code_malformed": "this is not an xfq voucher code",
    }
    raise UnknownObject(messages[read.value])


def _quote_out(q: Quote) -> QuoteOut:
    return QuoteOut(
        code=q.code.value,
        message=q.message,
        voucher_id=q.voucher_id,
        discount_fen=q.discount_fen,
        customer_pays_fen=q.customer_pays_fen,
        shortfall_fen=q.shortfall_fen,
    )


def _redemption_out(r: Redemption) -> RedemptionOut:
    return RedemptionOut(
        id=r.id,
        voucher_id=r.voucher_id,
        order_ref=r.order_ref,
        list_price_fen=r.list_price_fen,
        merchant_promotion_fen=r.merchant_promotion_fen,
        discount_fen=r.discount_fen,
        customer_pays_fen=r.customer_pays_fen,
        redeemed_at=r.redeemed_at,
        state=r.state.value,
    )


@router.post("/quotes", response_model=QuoteOut)
async def post_quote(body: QuoteIn, merchant_id: MerchantDep, container: ContainerDep) -> QuoteOut:
    """What the presented voucher takes off this order, or why it does not apply."""
    campaign, _ = container.running()
    read = _read(container, body.code)
    now, order = container.clock.now(), _order(body.order)
    q = await read_ledger(
        container, quote_order, campaign, now, merchant_id, read.person_id, order, read.voucher_id
    )
    return _quote_out(q)


@router.post(
    "/redemptions",
    response_model=RedeemOut,
    status_code=201,
    responses={200: {"model": RedeemOut}},
)
async def post_redemption(
    body: RedeemIn, key: IdempotencyKey, merchant_id: MerchantDep, container: ContainerDep
) -> JSONResponse:
    """Redeem the presented voucher on this order (核销)."""
    campaign, _ = container.running()
    read = _read(container, body.code)
    request = RedeemRequest(
        merchant_id, read.person_id, read.voucher_id, body.order_ref, _order(body.order), key
    )
    future = submit_redeem(
        container.ledger, campaign, container.ids, container.clock.now(), request
    )
    answer = await asyncio.wrap_future(future)
    _raise_refusal(answer.code, answer.message)
    out = RedeemOut(code=answer.code.value, message=answer.message)
    if answer.redemption is not None:
        out.redemption = _redemption_out(answer.redemption)
    status = 201 if answer.code is CheckoutCode.OK else 200
    return JSONResponse(out.model_dump(mode="json"), status)


def _raise_refusal(code: CheckoutCode | RefundCode, message: str) -> None:
    """Unknown objects and reused keys are problems; other outcomes are answers with a code."""
    if code.value == "not_found":
        raise UnknownObject(message)
    if code.value == "idempotency_conflict":
        raise IdempotencyConflict(message)


@router.get(
    "/redemptions/{redemption_id}",
    response_model=RedemptionOut,
    responses={404: {"description": "No such redemption at this merchant"}},
)
async def get_redemption(
    redemption_id: RedemptionId, merchant_id: MerchantDep, container: ContainerDep
) -> RedemptionOut:
    found = await read_ledger(container, lambda reader: reader.redemption(redemption_id))
    if found is None or found.merchant_id != merchant_id:
        raise UnknownObject("no such redemption at this merchant")
    return _redemption_out(found)


@router.post(
    "/redemptions/{redemption_id}/refunds",
    response_model=RefundOut,
    status_code=201,
    responses={200: {"model": RefundOut}},
)
async def post_refund(
    redemption_id: RedemptionId,
    body: RefundIn,
    key: IdempotencyKey,
    merchant_id: MerchantDep,
    container: ContainerDep,
) -> JSONResponse:
    """Refund goods of a redeemed order; the campaign's policy decides what the voucher does."""
    campaign, _ = container.running()
    request = RefundRequest(merchant_id, redemption_id, body.refund_fen, key)
    future = submit_refund(
        container.ledger, campaign, container.ids, container.clock.now(), request
    )
    answer = await asyncio.wrap_future(future)
    _raise_refusal(answer.code, answer.message)  # as problem+json, like every error
    out = RefundOut(
        code=answer.code.value,
        message=answer.message,
        outcome=answer.outcome.value if answer.outcome else None,
    )
    return JSONResponse(out.model_dump(mode="json"), 201 if answer.code is RefundCode.OK else 200)
