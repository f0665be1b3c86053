"""At the till: does a voucher apply to an order, how much comes off, which voucher is best."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from xfq.domain.campaign import CheckoutRules, ThresholdBase, VoucherType
from xfq.domain.money import format_yuan
from xfq.domain.voucher import Voucher, VoucherState


class CheckoutCode(StrEnum):
    OK = "ok"
    BELOW_THRESHOLD = "below_threshold"
    WRONG_CATEGORY = "wrong_category"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    ALREADY_REDEEMED = "already_redeemed"
    MERCHANT_NOT_ENROLLED = "merchant_not_enrolled"
    INVALID_ORDER = "invalid_order"
    ONE_VOUCHER_PER_ORDER = "one_voucher_per_order"
    NO_VOUCHER = "no_voucher"
    NOT_FOUND = "not_found"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"


@dataclass(frozen=True)
class Order:
    """An order as the merchant's till sees it, before the government voucher."""

    list_price_fen: int
    merchant_promotion_fen: int = 0

    @property
    def payable_fen(self) -> int:
        return self.list_price_fen - self.merchant_promotion_fen

    def problem(self) -> str | None:
        if self.list_price_fen <= 0:
            return "the order amount must be more than 0"
        if self.merchant_promotion_fen < 0:
            return "the merchant's promotion cannot be negative"
        if self.merchant_promotion_fen >= self.list_price_fen:
            return "the merchant's promotion must be less than the order amount"
        return None


@dataclass(frozen=True)
class Merchant:
    id: str
    category: str
    enrolled: bool


@dataclass(frozen=True)
class Quote:
    code: CheckoutCode
    message: str
    voucher_id: str | None = None
    threshold_base_fen: int = 0
    discount_fen: int = 0
    customer_pays_fen: int = 0
    shortfall_fen: int = 0  # how much more to spend to reach the threshold

    @property
    def ok(self) -> bool:
        return self.code is CheckoutCode.OK


def threshold_base_fen(order: Order, rules: CheckoutRules) -> int:
    if rules.threshold_base is ThresholdBase.LIST_PRICE:
        return order.list_price_fen
    return order.payable_fen


def quote(
    voucher: Voucher,
    vtype: VoucherType,
    merchant: Merchant,
    order: Order,
    rules: CheckoutRules,
    now: datetime,
) -> Quote:
    """What `voucher` takes off `order` at `merchant` now, or why it does not apply."""
    refusal = _refusal(voucher, vtype, merchant, order, now)
    if refusal is not None:
        return refusal
    base_fen = threshold_base_fen(order, rules)
    if base_fen < vtype.threshold_fen:
        short_fen = vtype.threshold_fen - base_fen
        return Quote(
            CheckoutCode.BELOW_THRESHOLD,
            f"spend {format_yuan(short_fen)} more to use {vtype.label}",
            voucher.id,
            threshold_base_fen=base_fen,
            customer_pays_fen=order.payable_fen,
            shortfall_fen=short_fen,
        )
    discount_fen = min(vtype.discount_fen, order.payable_fen)
    return Quote(
        CheckoutCode.OK,
        f"{vtype.label}: {format_yuan(discount_fen)} off",
        voucher.id,
        threshold_base_fen=base_fen,
        discount_fen=discount_fen,
        customer_pays_fen=order.payable_fen - discount_fen,
    )


def _refusal(
    voucher: Voucher, vtype: VoucherType, merchant: Merchant, order: Order, now: datetime
) -> Quote | None:
    order_problem = order.problem()
    if order_problem is not None:
        return Quote(CheckoutCode.INVALID_ORDER, order_problem, voucher.id)
    if not merchant.enrolled:
        return Quote(
            CheckoutCode.MERCHANT_NOT_ENROLLED,
            f"merchant {merchant.id} is not enrolled in the campaign",
            voucher.id,
        )
    if merchant.category != vtype.category:
        return Quote(
            CheckoutCode.WRONG_CATEGORY,
            f"a {vtype.category} voucher cannot be used at a {merchant.category} merchant",
            voucher.id,
        )
    if voucher.state is VoucherState.REDEEMED:
        return Quote(CheckoutCode.ALREADY_REDEEMED, "this voucher is already used", voucher.id)
    if voucher.state is VoucherState.EXPIRED or now >= voucher.valid_until:
        until = voucher.valid_until.isoformat()
        return Quote(CheckoutCode.EXPIRED, f"this voucher expired at {until}", voucher.id)
    if now < voucher.valid_from:
        since = voucher.valid_from.isoformat()
        return Quote(CheckoutCode.NOT_YET_VALID, f"usable from {since}", voucher.id)
    return None


def best_quote(
    candidates: Iterable[tuple[Voucher, VoucherType]],
    merchant: Merchant,
    order: Order,
    rules: CheckoutRules,
    now: datetime,
) -> Quote:
    """The voucher that takes most off; otherwise the nearest one to reach, with its shortfall.

    Ties on the discount go to the voucher that expires first, so nothing is wasted.
    """
    order_problem = order.problem()
    if order_problem is not None:
        return Quote(CheckoutCode.INVALID_ORDER, order_problem)
    if not merchant.enrolled:
        message = f"merchant {merchant.id} is not enrolled in the campaign"
        return Quote(CheckoutCode.MERCHANT_NOT_ENROLLED, message)
    quotes = [(quote(v, t, merchant, order, rules, now), v.valid_until) for v, t in candidates]
    usable = [(q, until) for q, until in quotes if q.ok]
    if usable:
        return min(usable, key=lambda qu: (-qu[0].discount_fen, qu[1]))[0]
    short = [(q, until) for q, until in quotes if q.code is CheckoutCode.BELOW_THRESHOLD]
    if short:
        return min(short, key=lambda qu: (qu[0].shortfall_fen, qu[1]))[0]
    return Quote(
        CheckoutCode.NO_VOUCHER,
        f"no usable voucher for a {merchant.category} merchant in this wallet",
        customer_pays_fen=max(order.payable_fen, 0),
    )
