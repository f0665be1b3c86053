"""Each cash-out rule flags the trace it looks for, explains it, and stays quiet on honest shops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xfq.domain.fraud import (
    Flag,
    FraudInput,
    FraudParams,
    GeoPoint,
    MerchantRecord,
    RedemptionRecord,
    Rule,
    abnormal_share,
    distance_km,
    far_payers,
    opening_burst,
    redeem_then_refund,
    repeat_pair,
    scan,
    threshold_hugging,
)

OPEN = datetime(2022, 3, 5, 2, 0, tzinfo=UTC)  # 10:00 in Taiyuan
P = FraudParams()
CITY = GeoPoint(37_870_000, 112_550_000)
BEIJING = GeoPoint(39_900_000, 116_400_000)


def rec(
    n: int,
    merchant: str = "m1",
    person: str | None = None,
    order_fen: int = 25_000,
    threshold_fen: int = 18_000,
    after: timedelta = timedelta(hours=4),
    refund_after: timedelta | None = None,
) -> RedemptionRecord:
    redeemed = OPEN + after
    return RedemptionRecord(
        id=f"rd{merchant}-{n:03d}",
        merchant_id=merchant,
        person_id=person or f"p{merchant}-{n}",
        type_id="r6-retail-180-40",
        threshold_fen=threshold_fen,
        discount_fen=4_000,
        order_fen=order_fen,
        redeemed_at=redeemed,
        opened_at=OPEN,
        refunded_fen=order_fen if refund_after is not None else 0,
        first_refund_at=None if refund_after is None else redeemed + refund_after,
    )


def honest_orders(merchant: str, n: int, start: int = 0) -> list[RedemptionRecord]:
    """Baskets from just under twice the threshold down; one in ten just above it."""
    return [
        rec(
            start + i,
            merchant,
            order_fen=18_080 if i % 10 == 0 else 20_000 + 1_500 * (i % 10),
            after=timedelta(hours=4 + i),
        )
        for i in range(n)
    ]


def data(*records: RedemptionRecord, **merchants: MerchantRecord) -> FraudInput:
    shops = {r.merchant_id: MerchantRecord(r.merchant_id, "retail") for r in records}
    return FraudInput(list(records), shops | merchants)


def only(flags: list[Flag]) -> Flag:
    assert len(flags) == 1, flags
    return flags[0]


def test_orders_rung_up_at_the_threshold_are_flagged_with_their_ids_and_figures() -> None:
    faked = [rec(i, "m1", order_fen=18_000 + 50 * (i % 3)) for i in range(16)]
    flag = only(threshold_hugging(data(*faked, *honest_orders("m1", 12, 100)), P))
    assert flag.rule is Rule.THRESHOLD_HUGGING and flag.merchant_id == "m1"
    assert flag.evidence["hugging"] == 18 and flag.evidence["orders"] == 28
    assert flag.evidence["honest_expected"] == 7
    assert set(flag.redemption_ids) >= {r.id for r in faked}
    assert "18 of 28 voucher orders (64%)" in flag.explanation
    assert "rdm1-000" in flag.explanation and "180.00-yuan threshold" in flag.explanation


def test_an_honest_shop_with_some_topped_up_baskets_is_not_flagged() -> None:
    assert threshold_hugging(data(*honest_orders("m1", 60)), P) == []


def test_hugging_needs_a_minimum_count_even_at_a_small_shop() -> None:
    few = [rec(i, "m1", order_fen=18_000) for i in range(P.hug_min_count - 1)]
    assert threshold_hugging(data(*few), P) == []
    enough = [rec(i, "m1", order_fen=18_000) for i in range(P.hug_min_count)]
    assert only(threshold_hugging(data(*enough), P)).evidence["hugging"] == P.hug_min_count


def test_one_person_paying_the_same_shop_three_times_is_flagged_once_per_shop() -> None:
    repeats = [rec(i, "m1", person="alice") for i in range(3)] + [
        rec(10 + i, "m1", person="bob") for i in range(4)
    ]
    flag = only(repeat_pair(data(*repeats, rec(50, "m1", person="carol")), P))
    assert flag.evidence["people"] == 2 and flag.evidence["orders"] == 7
    assert flag.evidence["person_ids"] == ["alice", "bob"]
    assert "bob 4 times" in flag.explanation and "rdm1-050" not in flag.redemption_ids


def test_two_visits_by_one_person_are_not_a_repeat() -> None:
    assert repeat_pair(data(*[rec(i, "m1", person="alice") for i in range(2)]), P) == []


def test_redeem_then_refund_within_a_day_repeatedly_is_flagged() -> None:
    cycled = [rec(i, "m1", refund_after=timedelta(minutes=20)) for i in range(5)]
    flag = only(redeem_then_refund(data(*cycled, *honest_orders("m1", 5, 100)), P))
    assert flag.evidence == {"refunded": 5, "orders": 10, "share_pct": 50}
    assert "within 24 hours" in flag.explanation


def test_refunds_a_week_later_or_at_a_normal_rate_are_not_flagged() -> None:
    late = [rec(i, "m1", refund_after=timedelta(days=3)) for i in range(6)]
    assert redeem_then_refund(data(*late), P) == []
    normal = [rec(i, "m1", refund_after=timedelta(hours=1)) for i in range(4)]
    assert redeem_then_refund(data(*normal, *honest_orders("m1", 30, 100)), P) == []


def test_a_burst_in_the_first_half_hour_after_the_release_is_flagged() -> None:
    burst = [rec(i, "m1", after=timedelta(minutes=2 + 3 * i)) for i in range(6)]
    flag = only(opening_burst(data(*burst), P))
    assert flag.evidence == {"in_window": 6, "orders": 6}
    assert "within 30 minutes" in flag.explanation


def test_orders_spread_over_the_day_are_not_a_burst() -> None:
    spread = [rec(i, "m1", after=timedelta(minutes=25 * i)) for i in range(8)]
    assert opening_burst(data(*spread), P) == []  # only 2 inside the window


def test_many_vouchers_from_people_living_far_away_are_flagged() -> None:
    far = [rec(i, "m1") for i in range(6)]
    near = honest_orders("m1", 20, 100)
    homes = {r.person_id: BEIJING for r in far} | {r.person_id: CITY for r in near}
    shop = MerchantRecord("m1", "retail", CITY)
    found = far_payers(FraudInput(far + near, {"m1": shop}, homes), P)
    assert only(found).evidence == {"far": 6, "located": 26, "payers": 6}
    assert "over 50 km away" in found[0].explanation


def test_far_payers_need_both_homes_and_the_shop_location() -> None:
    far = [rec(i, "m1") for i in range(6)]
    homes = {r.person_id: BEIJING for r in far}
    assert far_payers(FraudInput(far, {"m1": MerchantRecord("m1", "retail")}, homes), P) == []
    near = {r.person_id: CITY for r in far}
    shop = MerchantRecord("m1", "retail", CITY)
    assert far_payers(FraudInput(far, {"m1": shop}, near), P) == []


def test_distance_is_about_right() -> None:
    assert 390 < distance_km(CITY, BEIJING) < 420
    assert distance_km(CITY, CITY) == 0


def test_a_merchant_selling_mostly_through_vouchers_is_flagged_by_its_reported_sales() -> None:
    orders = honest_orders("m1", 10)
    value = sum(r.order_fen for r in orders)
    flagged = MerchantRecord("m1", "retail", sales_fen=value)  # every sale was a voucher sale
    flag = only(abnormal_share(FraudInput(orders, {"m1": flagged}), P))
    assert flag.evidence["sales_fen"] == value and "100% of its reported sales" in flag.explanation
    normal = MerchantRecord("m1", "retail", sales_fen=value * 5)
    assert abnormal_share(FraudInput(orders, {"m1": normal}), P) == []


def test_without_sales_figures_a_merchant_far_above_its_peers_is_flagged() -> None:
    records = honest_orders("big", 40)
    shops = {"big": MerchantRecord("big", "retail")}
    for k in range(4):
        records += honest_orders(f"s{k}", 8)
        shops[f"s{k}"] = MerchantRecord(f"s{k}", "retail")
    flag = only(abnormal_share(FraudInput(records, shops), P))
    assert flag.merchant_id == "big" and "5.0 times the median of 8" in flag.explanation


def test_scan_is_stable_and_ids_do_not_depend_on_the_evidence() -> None:
    faked = [rec(i, "m1", order_fen=18_000) for i in range(8)]
    first = scan(data(*faked))
    again = scan(data(*faked, rec(99, "m1", order_fen=18_000)))
    assert [f.id for f in first] == [f.id for f in again]
    assert first[0].evidence != again[0].evidence
    assert scan(data(*honest_orders("m1", 30), *honest_orders("m2", 30, 100))) == []
