"""The merchant's checkout page: quote a voucher on an order, redeem it, refund it.

The merchant pastes its till key into the page. Each form post carries the key to this
handler, which signs the request with it (`signed_headers`, the server's clock) and sends it
through the merchants' API in process; the key is never stored. Signing in the browser with
WebCrypto was the alternative; it was not chosen because the API checks the signature's
timestamp against the server's clock (a simulated one in the demo and the tests, days away
from the browser's), because `crypto.subtle` exists only on HTTPS or loopback pages, and
because one signing implementation is easier to keep right than two.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from xfq.api.auth.merchant_signature import signed_headers
from xfq.bootstrap import Container
from xfq.domain.campaign import ThresholdBase
from xfq.domain.money import MoneyFormatError, format_yuan, yuan_to_fen
from xfq.domain.till_code import CodeProblem, read_code
from xfq.web.common import (
    IDEMPOTENCY_KEY,
    SameOrigin,
    container_of,
    new_key,
    read_form,
    render,
    translator,
)
from xfq.web.i18n import known
from xfq.web.inprocess import Answer, call_api

router = APIRouter()
KEY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_SECRET_CHARS = 256
MAX_CODE_CHARS = 512


class Refused(Exception):
    """A form the page cannot send: the message key and its values to show instead."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message)
        self.message = message
        self.values = values


def _till_key(form: dict[str, str]) -> tuple[str, bytes]:
    key_id, secret = form.get("key_id", ""), form.get("secret", "")
    if not KEY_ID.fullmatch(key_id) or not 0 < len(secret) <= MAX_SECRET_CHARS:
        raise Refused("key_refused", code="missing_key")
    return key_id, secret.encode()


def _fen(request: Request, form: dict[str, str], name: str, label: str, default: int = -1) -> int:
    text = form.get(name, "")
    t = translator(request)
    if not text and default >= 0:
        return default
    if not text:
        raise Refused("field_missing", field=t(label))
    try:
        return yuan_to_fen(text)
    except MoneyFormatError:
        raise Refused("amount_invalid", field=t(label)) from None


def _code(container: Container, form: dict[str, str]) -> str:
    """The pasted code, after the checks that need no ledger (so the message is precise)."""
    code = form.get("code", "")
    if not code:
        raise Refused("code_malformed")
    read = read_code(container.till_key, code[:MAX_CODE_CHARS], container.clock.now())
    if isinstance(read, CodeProblem):
        raise Refused(read.value)
    return code


async def _signed(
    request: Request,
    till: tuple[str, bytes],
    path: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
) -> Answer:
    container = container_of(request)
    body = json.dumps(payload).encode()
    headers = signed_headers(till[0], till[1], "POST", path, body, container.clock.now())
    headers["Content-Type"] = "application/json"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    client = (request.client.host, request.client.port) if request.client else None
    answer = await call_api(request.app, "POST", path, headers, body, client)
    if answer.status in (401, 403):
        raise Refused("key_refused", code=answer.problem_code)
    if answer.status >= 400 and "type" in answer.body:  # problem+json, not a result
        detail = str(answer.body.get("detail", ""))
        raise Refused("request_refused", code=answer.problem_code, detail=detail)
    return answer


def _refused(request: Request, refused: Refused) -> Response:
    context = {"message": refused.message, "values": refused.values}
    return render(request, "_message.html", context)


@router.get("/merchant")
async def checkout_page(request: Request) -> Response:
    return render(request, "checkout.html", {})


@router.post("/merchant/quote")
async def post_quote(request: Request, _: SameOrigin) -> Response:
    form = await read_form(request)
    container = container_of(request)
    try:
        till = _till_key(form)
        list_fen = _fen(request, form, "amount", "order_amount")
        promotion_fen = _fen(request, form, "promotion", "order_promotion", default=0)
        code = _code(container, form)
        order = {"list_price_fen": list_fen, "merchant_promotion_fen": promotion_fen}
        answer = await _signed(request, till, "/v1/merchant/quotes", {"code": code, "order": order})
    except Refused as refused:
        return _refused(request, refused)
    q = answer.body
    context = {
        "quote": q,
        "code": code,
        "list_fen": list_fen,
        "promotion_fen": promotion_fen,
        "order_ref": new_key("web-order"),
        "redeem_key": new_key("web-redeem"),
        "message": known(f"quote_{q['code']}", "quote_not_found"),
        "values": {
            "discount": format_yuan(q["discount_fen"]),
            "pays": format_yuan(q["customer_pays_fen"]),
            "shortfall": format_yuan(q["shortfall_fen"]),
        },
    }
    return render(request, "_quote.html", context)


@router.post("/merchant/redeem")
async def post_redeem(request: Request, _: SameOrigin) -> Response:
    form = await read_form(request)
    container = container_of(request)
    try:
        till = _till_key(form)
        code = _code(container, form)
        key, order_ref = form.get("redeem_key", ""), form.get("order_ref", "")
        if not IDEMPOTENCY_KEY.fullmatch(key) or not IDEMPOTENCY_KEY.fullmatch(order_ref):
            raise Refused("quote_idempotency_conflict")
        order = {
            "list_price_fen": int(form.get("list_fen", "0")),
            "merchant_promotion_fen": int(form.get("promotion_fen", "0")),
        }
        payload = {"code": code, "order_ref": order_ref, "order": order}
        answer = await _signed(request, till, "/v1/merchant/redemptions", payload, key)
    except ValueError:
        return _refused(request, Refused("quote_invalid_order"))
    except Refused as refused:
        return _refused(request, refused)
    redemption = answer.body.get("redemption")
    if answer.status != 201 or redemption is None:
        result = known(f"quote_{answer.body.get('code')}", "quote_not_found")
        return _refused(request, Refused(result))
    campaign = container.running()[0]
    base_fen = redemption["list_price_fen"]
    if campaign.checkout.threshold_base is ThresholdBase.AFTER_MERCHANT_PROMOTION:
        base_fen -= redemption["merchant_promotion_fen"]
    context = {
        "redemption": redemption,
        "refund_default": format_yuan(base_fen),
        "refund_key": new_key("web-refund"),
    }
    return render(request, "_redeemed.html", context)


@router.post("/merchant/refund")
async def post_refund(request: Request, _: SameOrigin) -> Response:
    """Refund goods of a redeemed order; every answer brings a fresh key for the next try."""
    form = await read_form(request)
    try:
        till = _till_key(form)
        redemption_id, key = form.get("redemption_id", ""), form.get("refund_key", "")
        if not KEY_ID.fullmatch(redemption_id) or not IDEMPOTENCY_KEY.fullmatch(key):
            raise Refused("refund_not_found")
        refund_fen = _fen(request, form, "refund", "refund_amount")
        path = f"/v1/merchant/redemptions/{quote(redemption_id, safe='')}/refunds"
        answer = await _signed(request, till, path, {"refund_fen": refund_fen}, key)
    except Refused as refused:
        message, values, good = refused.message, refused.values, False
    else:
        outcome = answer.body.get("outcome")
        good = answer.status == 201 and outcome is not None
        result = f"refund_{outcome}" if good else f"refund_{answer.body.get('code')}"
        message, values = known(result, "refund_not_found"), {}
    key = new_key("web-refund")
    context = {"message": message, "values": values, "good": good, "refund_key": key}
    return render(request, "_refunded.html", context)
