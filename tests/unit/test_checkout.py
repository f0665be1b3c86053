"""At the till: whether a voucher applies to an order, what it takes off, and which one is best."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import (
    CATERING,
    HOME,
    ONE_US,
    ONLINE,
    R5_OPENS_AT,
    R5_VALID_UNTIL,
    R6_CATERING_200_50,
    R6_HOME_2000_300,
    R6_ONLINE_180_40,
    R6_RETAIL_30_6,
    R6_RETAIL_180_40,
    R6_VALID_UNTIL,
    RETAIL,
    local,
    make_checkout_rules,
    make_merchant,
    make_round,
    make_round5,
    make_voucher,
    order_yuan,
    utc,
)

from xfq.domain.campaign import CheckoutRules, ThresholdBase, VoucherType
from xfq.domain.checkout import (
    CheckoutCode,
    Merchant,
    Order,
    Quote,
    best_quote,
    quote,
    threshold_base_fen,
)
from xfq.domain.voucher import Voucher, VoucherState

NOW = local(2022, 3, 8, 12)
AFTER_PROMOTION = make_checkout_rules()
LIST_PRICE = make_checkout_rules(threshold_base=ThresholdBase.LIST_PRICE)
SHOP = make_merchant()


def vtype_of(type_id: str) -> VoucherType:
    rnd = make_round5() if type_id.startswith("r5-") else make_round()
    return next(t for t in rnd.types if t.id == type_id)


def voucher_of(type_id: str, **overrides: Any) -> tuple[Voucher, VoucherType]:
    """A voucher of `type_id` in its round's default window (round 5 or 6)."""
    vtype = vtype_of(type_id)
    fields: dict[str, Any] = {
        "id": f"v-{type_id}",
        "type_id": vtype.id,
        "round_id": vtype.round_id,
        "category": vtype.category,
    }
    if vtype.round_id == "r5":
        claimed_at = R5_OPENS_AT + timedelta(seconds=3)
        fields |= {"issued_at": claimed_at, "valid_from": claimed_at, "valid_until": R5_VALID_UNTIL}
    return make_voucher(**(fields | overrides)), vtype


def quote_for(
    order: Order,
    *,
    type_id: str = R6_RETAIL_180_40,
    voucher: Voucher | None = None,
    merchant: Merchant = SHOP,
    rules: CheckoutRules = AFTER_PROMOTION,
    now: datetime = NOW,
) -> Quote:
    default_voucher, vtype = voucher_of(type_id)
    return quote(voucher or default_voucher, vtype, merchant, order, rules, now)


# --- the threshold (满X) ------------------------------------------------------------------------


def test_an_order_exactly_at_the_threshold_gets_the_discount() -> None:
    q = quote_for(order_yuan("180.00"))
    assert q.code is CheckoutCode.OK and q.ok
    assert q.discount_fen == 40_00
    assert q.customer_pays_fen == 140_00
    assert q.threshold_base_fen == 180_00
    assert q.voucher_id == f"v-{R6_RETAIL_180_40}"
    assert q.message == "满180减40: 40.00 off"


def test_one_fen_short_of_the_threshold_says_how_much_more_to_spend() -> None:
    q = quote_for(order_yuan("179.99"))
    assert q.code is CheckoutCode.BELOW_THRESHOLD and not q.ok
    assert q.message == "spend 0.01 more to use 满180减40"
    assert q.shortfall_fen == 1
    assert q.discount_fen == 0
    assert q.customer_pays_fen == 179_99


@pytest.mark.parametrize(
    ("type_id", "order", "discount_fen", "pays_fen"),
    [
        (R6_RETAIL_180_40, order_yuan("180"), 40_00, 140_00),
        (R6_RETAIL_180_40, order_yuan("1000"), 40_00, 960_00),  # a discount is fixed, not a rate
        (R6_RETAIL_180_40, order_yuan("250", "50"), 40_00, 160_00),
        (R6_RETAIL_30_6, order_yuan("30"), 6_00, 24_00),
        (R6_RETAIL_30_6, order_yuan("45.67", "5.67"), 6_00, 34_00),
        (R6_HOME_2000_300, order_yuan("2999.99"), 300_00, 2699_99),
    ],
)
def test_customer_pays_the_payable_amount_less_the_discount(
    type_id: str, order: Order, discount_fen: int, pays_fen: int
) -> None:
    merchant = make_merchant(category=vtype_of(type_id).category)
    q = quote_for(order, type_id=type_id, merchant=merchant)
    assert q.ok
    assert q.discount_fen == discount_fen
    assert q.customer_pays_fen == pays_fen == order.payable_fen - q.discount_fen


# --- stacking with the merchant's own promotion ---------------------------------------------------


def test_a_merchant_promotion_can_push_the_order_below_the_threshold() -> None:
    """200 yuan of goods, 30 off from the shop for 3·8: the customer pays 170, below 满180."""
    q = quote_for(order_yuan("200", "30"), rules=AFTER_PROMOTION)
    assert q.code is CheckoutCode.BELOW_THRESHOLD
    assert q.threshold_base_fen == 170_00
    assert q.shortfall_fen == 10_00
    assert q.message == "spend 10.00 more to use 满180减40"
    assert q.customer_pays_fen == 170_00


def test_with_the_list_price_rule_the_same_order_qualifies() -> None:
    q = quote_for(order_yuan("200", "30"), rules=LIST_PRICE)
    assert q.ok
    assert q.threshold_base_fen == 200_00
    assert q.discount_fen == 40_00
    assert q.customer_pays_fen == 130_00  # both discounts stack


def test_a_promotion_that_leaves_exactly_the_threshold_qualifies() -> None:
    q = quote_for(order_yuan("200", "20"), rules=AFTER_PROMOTION)
    assert q.ok
    assert q.customer_pays_fen == 140_00


@pytest.mark.parametrize(("rules", "base_fen"), [(AFTER_PROMOTION, 170_00), (LIST_PRICE, 200_00)])
def test_threshold_base_by_rule(rules: CheckoutRules, base_fen: int) -> None:
    assert threshold_base_fen(order_yuan("200", "30"), rules) == base_fen


def test_under_the_list_price_rule_the_customer_never_pays_less_than_nothing() -> None:
    """List price 180 qualifies, but the shop already took 170 off: at most 10 comes off."""
    q = quote_for(order_yuan("180", "170"), rules=LIST_PRICE)
    assert q.ok
    assert q.discount_fen == 10_00
    assert q.customer_pays_fen == 0


# --- where and when -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_id", "merchant_category"),
    [
        (R6_RETAIL_180_40, CATERING),
        (R6_RETAIL_180_40, ONLINE),
        (R6_ONLINE_180_40, RETAIL),
        (R6_HOME_2000_300, RETAIL),
        (R6_CATERING_200_50, HOME),
    ],
)
def test_a_voucher_of_another_category_is_refused(type_id: str, merchant_category: str) -> None:
    vtype = vtype_of(type_id)
    q = quote_for(
        order_yuan("5000"), type_id=type_id, merchant=make_merchant(category=merchant_category)
    )
    assert q.code is CheckoutCode.WRONG_CATEGORY
    assert q.message == (
        f"a {vtype.category} voucher cannot be used at a {merchant_category} merchant"
    )
    assert q.discount_fen == 0


def test_a_merchant_not_enrolled_cannot_take_vouchers() -> None:
    q = quote_for(order_yuan("200"), merchant=make_merchant(id="m-9", enrolled=False))
    assert q.code is CheckoutCode.MERCHANT_NOT_ENROLLED
    assert q.message == "merchant m-9 is not enrolled in the campaign"
    assert q.discount_fen == 0


@pytest.mark.parametrize(
    ("now", "code"),
    [
        (local(2022, 3, 11, 23, 59, 59), CheckoutCode.OK),
        (local(2022, 3, 11, 23, 59, 59, 999_999), CheckoutCode.OK),
        (local(2022, 3, 12), CheckoutCode.EXPIRED),
        (utc(2022, 3, 11, 15, 59, 59), CheckoutCode.OK),
        (utc(2022, 3, 11, 16), CheckoutCode.EXPIRED),
        (local(2022, 3, 15), CheckoutCode.EXPIRED),
    ],
)
def test_a_round6_voucher_expires_at_midnight_starting_march_12_taiyuan_time(
    now: datetime, code: CheckoutCode
) -> None:
    q = quote_for(order_yuan("200"), now=now)
    assert q.code is code


def test_expired_says_when() -> None:
    q = quote_for(order_yuan("200"), now=R6_VALID_UNTIL)
    assert q.message == "this voucher expired at 2022-03-12T00:00:00+08:00"
    assert q.discount_fen == 0


def test_a_voucher_marked_expired_is_refused_even_inside_its_window() -> None:
    voucher, _ = voucher_of(R6_RETAIL_180_40, state=VoucherState.EXPIRED)
    assert quote_for(order_yuan("200"), voucher=voucher).code is CheckoutCode.EXPIRED


def test_a_voucher_is_not_usable_before_its_window_opens() -> None:
    valid_from = local(2022, 3, 7)
    voucher, _ = voucher_of(R6_RETAIL_180_40, valid_from=valid_from)
    q = quote_for(order_yuan("200"), voucher=voucher, now=valid_from - ONE_US)
    assert q.code is CheckoutCode.NOT_YET_VALID
    assert q.message == "usable from 2022-03-07T00:00:00+08:00"
    assert quote_for(order_yuan("200"), voucher=voucher, now=valid_from).ok


def test_a_redeemed_voucher_is_refused() -> None:
    voucher, _ = voucher_of(R6_RETAIL_180_40, state=VoucherState.REDEEMED)
    q = quote_for(order_yuan("200"), voucher=voucher)
    assert q.code is CheckoutCode.ALREADY_REDEEMED
    assert q.message == "this voucher is already used"
    assert q.discount_fen == 0


# --- orders that make no sense ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (Order(0), "the order amount must be more than 0"),
        (Order(-100_00), "the order amount must be more than 0"),
        (Order(200_00, -1), "the merchant's promotion cannot be negative"),
        (Order(200_00, 200_00), "the merchant's promotion must be less than the order amount"),
        (Order(200_00, 250_00), "the merchant's promotion must be less than the order amount"),
    ],
)
def test_invalid_orders_are_refused_with_a_reason(order: Order, message: str) -> None:
    q = quote_for(order)
    assert q.code is CheckoutCode.INVALID_ORDER
    assert q.message == message
    assert q.discount_fen == 0


def test_an_invalid_order_is_reported_before_anything_about_the_voucher() -> None:
    voucher, _ = voucher_of(R6_RETAIL_180_40, state=VoucherState.REDEEMED)
    q = quote_for(Order(0), voucher=voucher, merchant=make_merchant(enrolled=False))
    assert q.code is CheckoutCode.INVALID_ORDER


def test_valid_order_has_no_problem_and_payable_is_after_promotion() -> None:
    order = order_yuan("200", "30")
    assert order.problem() is None
    assert order.payable_fen == 170_00


# --- best_quote: choosing from the wallet -------------------------------------------------------


def best(
    wallet: list[tuple[Voucher, VoucherType]],
    order: Order,
    merchant: Merchant = SHOP,
    now: datetime = NOW,
) -> Quote:
    return best_quote(wallet, merchant, order, AFTER_PROMOTION, now)


def test_best_quote_takes_the_largest_discount() -> None:
    wallet = [voucher_of(R6_RETAIL_30_6), voucher_of(R6_RETAIL_180_40)]
    for candidates in (wallet, wallet[::-1]):
        q = best(candidates, order_yuan("200"))
        assert q.ok
        assert q.voucher_id == f"v-{R6_RETAIL_180_40}"
        assert q.discount_fen == 40_00


def test_best_quote_uses_the_smaller_voucher_when_the_larger_does_not_apply() -> None:
    wallet = [voucher_of(R6_RETAIL_180_40), voucher_of(R6_RETAIL_30_6)]
    q = best(wallet, order_yuan("50"))
    assert q.ok
    assert q.voucher_id == f"v-{R6_RETAIL_30_6}"
    assert q.customer_pays_fen == 44_00


def two_vouchers_expiring_on_different_days() -> list[tuple[Voucher, VoucherType]]:
    """Two 满180减40 in one wallet: one usable until the end of 3-09, the other until 3-11."""
    return [
        voucher_of(R6_RETAIL_180_40, id="v-late"),
        voucher_of(R6_RETAIL_180_40, id="v-early", valid_until=local(2022, 3, 10)),
    ]


def test_on_equal_discounts_the_voucher_expiring_first_is_used() -> None:
    wallet = two_vouchers_expiring_on_different_days()
    for candidates in (wallet, wallet[::-1]):
        q = best(candidates, order_yuan("200"))
        assert q.ok and q.voucher_id == "v-early"


def test_expired_and_used_vouchers_are_passed_over() -> None:
    wallet = [
        voucher_of("r5-retail-180-40"),
        voucher_of(R6_RETAIL_180_40, id="v-used", state=VoucherState.REDEEMED),
        voucher_of(R6_RETAIL_30_6),
    ]
    q = best(wallet, order_yuan("200"))
    assert q.ok and q.voucher_id == f"v-{R6_RETAIL_30_6}"


def test_when_nothing_applies_the_hint_is_the_smallest_shortfall() -> None:
    wallet = [voucher_of(R6_RETAIL_180_40), voucher_of(R6_RETAIL_30_6)]
    q = best(wallet, order_yuan("25"))
    assert q.code is CheckoutCode.BELOW_THRESHOLD
    assert q.voucher_id == f"v-{R6_RETAIL_30_6}"
    assert q.shortfall_fen == 5_00
    assert q.message == "spend 5.00 more to use 满30减6"


def test_equal_shortfalls_point_to_the_voucher_expiring_first() -> None:
    wallet = two_vouchers_expiring_on_different_days()
    for candidates in (wallet, wallet[::-1]):
        q = best(candidates, order_yuan("100"))
        assert q.code is CheckoutCode.BELOW_THRESHOLD
        assert q.voucher_id == "v-early"
        assert q.shortfall_fen == 80_00


@pytest.mark.parametrize(
    "wallet",
    [
        [],
        [voucher_of(R6_CATERING_200_50), voucher_of(R6_HOME_2000_300)],
        [voucher_of(R6_ONLINE_180_40)],
    ],
)
def test_no_voucher_of_the_merchants_category(wallet: list[tuple[Voucher, VoucherType]]) -> None:
    q = best(wallet, order_yuan("200", "10"))
    assert q.code is CheckoutCode.NO_VOUCHER
    assert q.message == "no usable voucher for a retail merchant in this wallet"
    assert q.voucher_id is None
    assert q.discount_fen == 0
    assert q.customer_pays_fen == 190_00


def test_a_catering_merchant_finds_the_catering_voucher_among_others() -> None:
    wallet = [voucher_of(R6_RETAIL_180_40), voucher_of(R6_CATERING_200_50)]
    q = best(wallet, order_yuan("200"), merchant=make_merchant(category=CATERING))
    assert q.ok and q.voucher_id == f"v-{R6_CATERING_200_50}"
    assert q.customer_pays_fen == 150_00


# --- known defects ------------------------------------------------------------------------------


def test_best_quote_at_a_merchant_not_enrolled_says_so() -> None:
    q = best(
        [voucher_of(R6_RETAIL_180_40)], order_yuan("200"), merchant=make_merchant(enrolled=False)
    )
    assert q.code is CheckoutCode.MERCHANT_NOT_ENROLLED


@pytest.mark.parametrize("order", [Order(0), Order(200_00, 200_00)])
def test_best_quote_on_an_invalid_order_says_the_order_is_invalid(order: Order) -> None:
    q = best([voucher_of(R6_RETAIL_180_40)], order)
    assert q.code is CheckoutCode.INVALID_ORDER
