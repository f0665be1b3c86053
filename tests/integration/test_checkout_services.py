"""Checkout, refunds and expiry through the services on a real ledger (reference round), SQLite
and PostgreSQL."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from servers.postgres_fixtures import LedgerDb
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.campaign import Campaign
from xfq.domain.checkout import CheckoutCode, Order
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.refund import RefundOutcome
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import ClaimRequest
from xfq.services.checkout import (
    RedeemAnswer,
    RedeemRequest,
    quote_order,
    redeem_unit,
    submit_redeem,
)
from xfq.services.expiry import expire
from xfq.services.grab import claim
from xfq.services.refund import RefundAnswer, RefundCode, RefundRequest, submit_refund
from xfq.services.wallet import wallet
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
TZ = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2022, 3, day, hour, minute, second, tzinfo=TZ)


@dataclass
class City:
    campaign: Campaign
    ledger: SqlLedger
    engine: EmbeddedClaimEngine
    clock: SimulatedClock
    ids: RandomIds
    db: LedgerDb

    def grab(self, person: str, type_id: str) -> Voucher:
        citizen = Citizen(person, Residency.PERMANENT, in_city=True)
        answer = claim(
            self.engine, self.clock, ClaimRequest(citizen, type_id, f"{person}-{type_id}")
        )
        assert answer.code is ClaimCode.ISSUED and answer.voucher is not None
        return answer.voucher

    def redeem(
        self,
        merchant: str,
        voucher: Voucher,
        order: Order,
        key: str,
        order_ref: str = "o-1",
        person: str | None = None,
    ) -> RedeemAnswer:
        request = RedeemRequest(
            merchant, person or voucher.person_id, voucher.id, order_ref, order, key
        )
        return submit_redeem(
            self.ledger, self.campaign, self.ids, self.clock.now(), request
        ).result()

    def refund(self, merchant: str, redemption_id: str, yuan: int, key: str) -> RefundAnswer:
        request = RefundRequest(merchant, redemption_id, yuan * 100, key)
        return submit_refund(
            self.ledger, self.campaign, self.ids, self.clock.now(), request
        ).result()

    def state(self, voucher: Voucher) -> VoucherState:
        found = self.ledger.reader().voucher(voucher.id)
        assert found is not None
        return found.state

    def rows(self, table: str) -> int:
        return int(self.db.scalar(f"SELECT count(*) FROM {table}"))


@pytest.fixture
def city(ledger_db: LedgerDb) -> Iterator[City]:
    campaign = load_campaign(EXAMPLE)
    ledger = SqlLedger(ledger_db.url)
    ledger.install_campaign(campaign, EXAMPLE.read_text(), at(4))
    ledger.enroll_merchant("shop", "Shop", "retail", at(4))
    ledger.enroll_merchant("shop2", "Other shop", "retail", at(4))
    ledger.enroll_merchant("hotpot", "Hotpot", "catering", at(4))
    ledger.enroll_merchant("pending", "Not yet approved", "retail", at(4), status="pending")
    clock = SimulatedClock(at(5, 10))
    engine = EmbeddedClaimEngine(campaign, ledger, RandomIds(), None)
    yield City(campaign, ledger, engine, clock, RandomIds(), ledger_db)
    engine.close()
    ledger.close()


def test_a_voucher_takes_its_discount_off_and_is_used_up(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-180-40")
    answer = city.redeem("shop", voucher, Order(20000, 0), "k1")
    assert answer.code is CheckoutCode.OK and answer.redemption is not None
    assert answer.redemption.discount_fen == 4000
    assert answer.redemption.customer_pays_fen == 16000
    assert city.state(voucher) is VoucherState.REDEEMED
    again = city.redeem("shop", voucher, Order(20000, 0), "k2", order_ref="o-2")
    assert again.code is CheckoutCode.ALREADY_REDEEMED


def test_a_retried_redemption_gets_the_same_answer_and_no_second_effect(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-30-6")
    first = city.redeem("shop", voucher, Order(5000, 0), "same-key")
    retry = city.redeem("shop", voucher, Order(5000, 0), "same-key")
    assert first.redemption is not None and retry.redemption is not None
    assert retry.code is CheckoutCode.OK and retry.redemption.id == first.redemption.id
    assert city.rows("redemptions") == 1
    other = city.redeem("shop", voucher, Order(9000, 0), "same-key")
    assert other.code is CheckoutCode.IDEMPOTENCY_CONFLICT


def test_two_tills_racing_for_one_voucher_redeem_it_once(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-30-6")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: city.redeem("shop", voucher, Order(5000, 0), f"k{i}", f"o{i}"),
                range(16),
            )
        )
    codes = [a.code for a in answers]
    assert codes.count(CheckoutCode.OK) == 1
    assert codes.count(CheckoutCode.ALREADY_REDEEMED) == 15
    assert city.rows("redemptions") == 1


RACES = 200
Send = Callable[[SqlLedger, int], list["Future[Any]"]]


def on_two_writers(city: City, send: Send) -> list[Any]:
    """`send(ledger, m)` from two threads at once, m = 0 on the city's ledger writer and 1 on
    another (as two API processes on one PostgreSQL ledger); every answer's code."""
    if city.db.backend != "postgresql":
        pytest.skip("a SQLite ledger has one writer at a time (BEGIN IMMEDIATE)")
    other = SqlLedger(city.db.url)
    try:
        with ThreadPoolExecutor(2) as pool:
            sent = pool.map(lambda m: send((city.ledger, other)[m], m), range(2))
            return [f.result().code for futures in sent for f in futures]  # errors raise
    finally:
        other.close()


def test_tills_on_two_api_processes_racing_redeem_each_voucher_once(city: City) -> None:
    """The loser of each race is answered `already_redeemed`, not an error."""
    vouchers = [city.grab(f"p{n}", "r6-retail-30-6") for n in range(RACES)]

    def till(ledger: SqlLedger, m: int) -> list[Future[Any]]:
        shop, now = ("shop", "shop2")[m], city.clock.now()
        requests = [
            RedeemRequest(shop, v.person_id, v.id, f"o{n}-{m}", Order(5000, 0), f"k{n}-{m}")
            for n, v in enumerate(vouchers)
        ]
        return [submit_redeem(ledger, city.campaign, city.ids, now, r) for r in requests]

    codes = on_two_writers(city, till)
    assert codes.count(CheckoutCode.OK) == RACES
    assert codes.count(CheckoutCode.ALREADY_REDEEMED) == RACES
    assert city.rows("redemptions") == RACES


def test_refunds_on_two_api_processes_racing_reverse_each_redemption_once(city: City) -> None:
    vouchers = [city.grab(f"p{n}", "r6-retail-30-6") for n in range(RACES)]
    redeemed = [
        city.redeem("shop", v, Order(5000, 0), f"k{n}", f"o{n}") for n, v in enumerate(vouchers)
    ]
    ids = [a.redemption.id for a in redeemed if a.redemption is not None]

    def till(ledger: SqlLedger, m: int) -> list[Future[Any]]:
        now = city.clock.now()
        return [
            submit_refund(
                ledger, city.campaign, city.ids, now, RefundRequest("shop", i, 5000, f"f{i}-{m}")
            )
            for i in ids
        ]

    codes = on_two_writers(city, till)
    assert codes.count(RefundCode.OK) == RACES
    assert codes.count(RefundCode.ALREADY_REVERSED) == RACES
    assert city.rows("refunds") == RACES


def test_nobody_redeems_a_voucher_that_is_not_theirs(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-30-6")
    answer = city.redeem("shop", voucher, Order(5000, 0), "k1", person="mallory")
    assert answer.code is CheckoutCode.NOT_FOUND
    assert city.state(voucher) is VoucherState.ISSUED
    assert city.rows("redemptions") == 0


def test_one_government_voucher_per_order(city: City) -> None:
    first = city.grab("alice", "r6-retail-30-6")
    second = city.grab("alice", "r6-catering-200-50")
    assert city.redeem("shop", first, Order(5000, 0), "k1", "order-9").code is CheckoutCode.OK
    answer = city.redeem("hotpot", second, Order(30000, 0), "k2", "order-9")
    assert answer.code is CheckoutCode.OK  # another merchant's order with the same number
    third = city.grab("bob", "r6-retail-180-40")
    refused = city.redeem("shop", third, Order(30000, 0), "k3", "order-9")
    assert refused.code is CheckoutCode.ONE_VOUCHER_PER_ORDER


def test_category_and_enrollment_are_enforced_at_the_till(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-30-6")
    assert city.redeem("hotpot", voucher, Order(5000, 0), "k1").code is CheckoutCode.WRONG_CATEGORY
    pending = city.redeem("pending", voucher, Order(5000, 0), "k2")
    assert pending.code is CheckoutCode.MERCHANT_NOT_ENROLLED
    assert city.redeem("nowhere", voucher, Order(5000, 0), "k3").code is CheckoutCode.NOT_FOUND
    assert city.state(voucher) is VoucherState.ISSUED


def test_the_merchants_own_promotion_counts_before_the_threshold(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-180-40")
    # 190 list price, 20 off by the shop: 170 is below 满180
    short = city.redeem("shop", voucher, Order(19000, 2000), "k1")
    assert short.code is CheckoutCode.BELOW_THRESHOLD
    assert "spend 10.00 more" in short.message
    quote = quote_order(
        city.ledger.reader(), city.campaign, city.clock.now(), "shop", "alice", Order(20000, 2000)
    )
    assert quote.ok and quote.discount_fen == 4000 and quote.customer_pays_fen == 14000


def test_a_full_refund_inside_validity_gives_the_voucher_back(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-180-40")
    red = city.redeem("shop", voucher, Order(20000, 0), "k1").redemption
    assert red is not None
    assert city.refund("shop2", red.id, 200, "r1").code is RefundCode.NOT_FOUND  # not theirs
    answer = city.refund("shop", red.id, 200, "r1")
    assert answer.outcome is RefundOutcome.RESTORED
    assert city.state(voucher) is VoucherState.ISSUED
    assert city.refund("shop", red.id, 200, "r2").code is RefundCode.ALREADY_REVERSED
    reused = city.redeem("shop", voucher, Order(18000, 0), "k2", order_ref="o-2")
    assert reused.code is CheckoutCode.OK


def test_a_refund_after_validity_never_restores(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-180-40")
    red = city.redeem("shop", voucher, Order(20000, 0), "k1").redemption
    assert red is not None
    city.clock.set(at(12, 0))  # the first instant after 2022-03-11
    answer = city.refund("shop", red.id, 200, "r1")
    assert answer.outcome is RefundOutcome.LAPSED
    assert city.state(voucher) is VoucherState.EXPIRED


def test_partial_refunds_keep_the_voucher_until_the_order_falls_below_the_threshold(
    city: City,
) -> None:
    voucher = city.grab("alice", "r6-retail-180-40")
    red = city.redeem("shop", voucher, Order(25000, 0), "k1").redemption
    assert red is not None
    assert city.refund("shop", red.id, 50, "r1").outcome is RefundOutcome.KEPT  # 200 left
    assert city.state(voucher) is VoucherState.REDEEMED
    assert city.refund("shop", red.id, 30, "r2").outcome is RefundOutcome.RESTORED  # 170 left
    assert city.state(voucher) is VoucherState.ISSUED


def test_a_refund_larger_than_the_order_is_refused_and_changes_nothing(city: City) -> None:
    voucher = city.grab("alice", "r6-retail-180-40")
    red = city.redeem("shop", voucher, Order(20000, 0), "k1").redemption
    assert red is not None
    answer = city.refund("shop", red.id, 201, "r1")
    assert answer.code is RefundCode.INVALID_REFUND and "at most 200.00" in answer.message
    assert city.rows("refunds") == 0
    assert city.state(voucher) is VoucherState.REDEEMED


def test_vouchers_expire_at_midnight_after_march_11_in_taiyuan_and_only_once(city: City) -> None:
    kept = city.grab("alice", "r6-retail-30-6")
    used = city.grab("bob", "r6-retail-30-6")
    assert city.redeem("shop", used, Order(5000, 0), "k1").code is CheckoutCode.OK
    assert expire(city.ledger, at(11, 23, 59, 59)).result() == 0
    assert expire(city.ledger, at(12, 0)).result() == 1
    assert expire(city.ledger, at(12, 1)).result() == 0
    assert city.state(kept) is VoucherState.EXPIRED
    assert city.state(used) is VoucherState.REDEEMED
    city.clock.set(at(12, 0) - timedelta(microseconds=1))
    late = city.redeem("shop", kept, Order(5000, 0), "k2", order_ref="o-2")
    assert late.code is CheckoutCode.EXPIRED


def test_the_wallet_lists_a_persons_vouchers_with_their_types(city: City) -> None:
    city.grab("alice", "r6-retail-30-6")
    city.grab("alice", "r6-home-500-80")
    entries = wallet(city.ledger.reader(), city.campaign, "alice")
    assert sorted(e.voucher_type.label for e in entries) == ["满30减6", "满500减80"]
    assert all(e.voucher.valid_until == at(12, 0) for e in entries)
    assert wallet(city.ledger.reader(), city.campaign, "bob") == []


def test_a_redemption_on_postgresql_waits_on_the_server_twice(city: City) -> None:
    """The order's lock, the merchant's row and the till's read go in one pipeline, and the
    voucher's move, its event and the redemption in one statement: two round trips (counted
    as the Sync messages libpq sends), with the same rows written as on SQLite."""
    if city.db.backend != "postgresql":
        pytest.skip("SQLite is in process: its statements cost no round trip")
    voucher = city.grab("alice", "r6-retail-30-6")
    request = RedeemRequest("shop", "alice", voucher.id, "o-1", Order(5000, 0), "k1")
    unit = redeem_unit(city.campaign, city.ids, city.clock.now(), request)
    with tempfile.TemporaryFile() as trace:

        def traced(tx: Any) -> RedeemAnswer:
            pgconn = tx._connection.driver_connection.pgconn
            pgconn.trace(trace.fileno())
            try:
                return unit(tx)
            finally:
                pgconn.untrace()

        answer = city.ledger.write(traced).result()
        trace.seek(0)
        syncs = sum(1 for line in trace if line.rstrip().endswith(b"\tSync"))
    assert answer.code is CheckoutCode.OK and answer.redemption is not None
    assert syncs == 2
    events = city.db.rows(
        "SELECT event, ref FROM voucher_events WHERE voucher_id = :v ORDER BY seq", v=voucher.id
    )
    assert [e for e, _ref in events] == ["issue", "redeem"]
    assert events[1][1] == answer.redemption.id
    assert city.state(voucher) is VoucherState.REDEEMED
    assert city.rows("redemptions") == 1
