"""Random sequences of claims, redemptions, refunds, clock moves and expiry against a model.

Hypothesis drives the real services over the embedded engine and a SQLite ledger (and, in a
shorter run, a PostgreSQL one). A small model
of what a person and a merchant expect predicts every answer code; after every step the ledger
itself is checked for the invariants of the design (the ledger balances, a voucher is redeemed
at most once at a time, stock is never oversold).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

import spec_text
from servers.postgres_fixtures import fresh_postgres_url
from servers.postgres_server import PostgresServer
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.checkout import CheckoutCode, Order
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.refund import RefundOutcome
from xfq.domain.voucher import VoucherEvent, VoucherState, next_state
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.services.checkout import RedeemAnswer, RedeemRequest, quote_order, submit_redeem
from xfq.services.expiry import expire
from xfq.services.grab import submit_claim
from xfq.services.refund import RefundAnswer, RefundCode, RefundRequest, submit_refund
from xfq.spec import parse_campaign

TIMEOUT_S = 10.0

# Vouchers are usable until midnight after the day after the claim (2 days counting the claim's
# day); claims are possible for two and a half days. A partial refund gives the voucher back
# only when what is kept of the order falls below the threshold.
SPEC_TEXT = (
    spec_text.campaign("lifecycle", "Lifecycle model")
    + spec_text.round_(
        claim_closes_at="2022-03-08T00:00:00",
        validity='{ kind = "days_after_claim", days = 2 }',
        residencies=("permanent", "work"),
    )
    + spec_text.voucher_type("r1-retail-100-20", 100, 20, 4, per_person=2)
    + spec_text.voucher_type("r1-retail-50-10", 50, 10, 2)
    + spec_text.voucher_type("r1-home-300-50", 300, 50, 1)
)

CAMPAIGN = parse_campaign(SPEC_TEXT, "lifecycle.toml")
R1 = CAMPAIGN.round("r1")
TYPES = {t.id: t for t in R1.types}
TYPE_IDS = tuple(TYPES)
START = R1.opens_at - timedelta(days=1)
BOGUS_TYPE = "r1-retail-1-0"

CITIZENS = {
    "p-0": Citizen("p-0", Residency.PERMANENT, in_city=True),
    "p-1": Citizen("p-1", Residency.WORK, in_city=True),
    "p-2": Citizen("p-2", Residency.PERMANENT, in_city=True),
    "visitor": Citizen("visitor", Residency.VISIT, in_city=True),
}
ELIGIBLE = ("p-0", "p-1", "p-2")


@dataclass(frozen=True)
class MerchantSetup:
    id: str
    category: str
    enrolled: bool


MERCHANTS = {
    m.id: m
    for m in (
        MerchantSetup("m-retail", "retail", enrolled=True),
        MerchantSetup("m-retail-2", "retail", enrolled=True),
        MerchantSetup("m-home", "home", enrolled=True),
        MerchantSetup("m-pending", "retail", enrolled=False),
    )
}
ENROLLED = tuple(m.id for m in MERCHANTS.values() if m.enrolled)


@dataclass
class ModelVoucher:
    id: str
    type_id: str
    person_id: str
    key: str
    valid_until: datetime
    state: VoucherState = VoucherState.ISSUED

    @property
    def category(self) -> str:
        return TYPES[self.type_id].category


@dataclass
class ModelRedemption:
    id: str
    voucher_id: str
    merchant_id: str
    key: str
    order_ref: str
    order: Order
    base_fen: int
    refunded_fen: int = 0
    posted: bool = True


@dataclass(frozen=True)
class RefundKind:
    percent: int  # of what is left of the order; 100 is a full refund
    at_own_merchant: bool  # False: another merchant asks to refund this redemption


class VoucherLifecycle(RuleBasedStateMachine):
    issued = Bundle("issued")
    redemptions = Bundle("redemptions")

    def __init__(self, new_ledger_url: Callable[[], str] | None = None) -> None:
        super().__init__()
        self._directory = tempfile.TemporaryDirectory(prefix="xfq-lifecycle-")
        path = Path(self._directory.name)
        url = new_ledger_url() if new_ledger_url else f"sqlite:///{path / 'ledger.db'}"
        self.ledger = SqlLedger(url)
        self.ledger.install_campaign(CAMPAIGN, SPEC_TEXT, START)
        for m in MERCHANTS.values():
            status = "enrolled" if m.enrolled else "pending"
            self.ledger.enroll_merchant(m.id, m.id, m.category, START, status=status)
        self._lock_path = path / "ledger.db.lock"
        self.engine = EmbeddedClaimEngine(CAMPAIGN, self.ledger, RandomIds(), self._lock_path)
        self.db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        self.clock = SimulatedClock(START)
        self.ids = RandomIds()
        self.vouchers: dict[str, ModelVoucher] = {}
        self.redeemed: dict[str, ModelRedemption] = {}
        self._serial = 0

    def teardown(self) -> None:
        self.engine.close()
        self.ledger.close()
        self.db.dispose()
        self._directory.cleanup()

    def fresh(self, what: str) -> str:
        self._serial += 1
        return f"{what}-{self._serial}"

    @initialize(
        target=issued,
        offset=st.sampled_from([timedelta(minutes=-10), timedelta(0), timedelta(hours=2)]),
        first_claims=st.lists(
            st.tuples(st.sampled_from(ELIGIBLE), st.sampled_from(TYPE_IDS)), max_size=6
        ),
    )
    def the_grab_opens(self, offset: timedelta, first_claims: list[tuple[str, str]]) -> object:
        """The clock starts near the opening, with the first claims of the grab."""
        self.clock.set(R1.opens_at + offset)
        taken = [self.take(person, type_id) for person, type_id in first_claims]
        return multiple(*(voucher_id for voucher_id in taken if voucher_id is not None))

    # --- claims ----------------------------------------------------------------------------

    def expected_claim(self, person: str, type_id: str) -> ClaimCode:
        now = self.clock.now()
        if type_id not in TYPES:
            return ClaimCode.UNKNOWN_TYPE
        if now < R1.opens_at:
            return ClaimCode.NOT_OPEN
        if now >= R1.claim_closes_at:
            return ClaimCode.CLOSED
        if person not in ELIGIBLE:
            return ClaimCode.NOT_ELIGIBLE
        vtype = TYPES[type_id]
        held = [v for v in self.vouchers.values() if v.person_id == person]
        assert R1.limits.per_category is not None and R1.limits.per_round is not None
        if (
            sum(v.type_id == type_id for v in held) >= vtype.per_person
            or sum(v.category == vtype.category for v in held) >= R1.limits.per_category
            or len(held) >= R1.limits.per_round
        ):
            return ClaimCode.LIMIT_REACHED
        if sum(v.type_id == type_id for v in self.vouchers.values()) >= vtype.count:
            return ClaimCode.SOLD_OUT
        return ClaimCode.ISSUED

    def claim(self, person: str, type_id: str, key: str) -> ClaimAnswer:
        request = ClaimRequest(CITIZENS[person], type_id, key)
        return submit_claim(self.engine, self.clock, request).result(TIMEOUT_S)

    @rule(
        target=issued,
        person=st.sampled_from(sorted(CITIZENS)),
        type_id=st.sampled_from((*TYPE_IDS, *TYPE_IDS, BOGUS_TYPE)),
    )
    def claim_voucher(self, person: str, type_id: str) -> object:
        voucher_id = self.take(person, type_id)
        return multiple() if voucher_id is None else voucher_id

    def take(self, person: str, type_id: str) -> str | None:
        """Claim with a fresh key as the model expects; the voucher's id if issued."""
        expected = self.expected_claim(person, type_id)
        key = self.fresh("claim")

        answer = self.claim(person, type_id, key)

        assert answer.code is expected, (answer, expected)
        if answer.voucher is None:
            assert expected is not ClaimCode.ISSUED
            return None
        v = answer.voucher
        assert (v.person_id, v.type_id, v.state) == (person, type_id, VoucherState.ISSUED)
        assert v.valid_from <= self.clock.now() < v.valid_until
        self.vouchers[v.id] = ModelVoucher(v.id, type_id, person, key, v.valid_until)
        return v.id

    @rule(voucher_id=issued, same_type=st.booleans())
    def retry_claim(self, voucher_id: str, same_type: bool) -> None:
        v = self.vouchers[voucher_id]
        other = TYPE_IDS[(TYPE_IDS.index(v.type_id) + 1) % len(TYPE_IDS)]

        answer = self.claim(v.person_id, v.type_id if same_type else other, v.key)

        if same_type:
            assert answer.code is ClaimCode.ISSUED, answer
            assert answer.voucher is not None and answer.voucher.id == voucher_id
        else:
            assert answer.code is ClaimCode.IDEMPOTENCY_CONFLICT, answer

    # --- redemptions -----------------------------------------------------------------------

    def expected_redeem(
        self, v: ModelVoucher, merchant_id: str, by_owner: bool, order_ref: str, base_fen: int
    ) -> CheckoutCode:
        now = self.clock.now()
        merchant = MERCHANTS[merchant_id]
        if not by_owner:
            return CheckoutCode.NOT_FOUND
        if any(
            r.posted and r.merchant_id == merchant_id and r.order_ref == order_ref
            for r in self.redeemed.values()
        ):
            return CheckoutCode.ONE_VOUCHER_PER_ORDER
        if not merchant.enrolled:
            return CheckoutCode.MERCHANT_NOT_ENROLLED
        if merchant.category != v.category:
            return CheckoutCode.WRONG_CATEGORY
        if v.state is VoucherState.REDEEMED:
            return CheckoutCode.ALREADY_REDEEMED
        if v.state is VoucherState.EXPIRED or now >= v.valid_until:
            return CheckoutCode.EXPIRED
        if base_fen < TYPES[v.type_id].threshold_fen:
            return CheckoutCode.BELOW_THRESHOLD
        return CheckoutCode.OK

    def redeem(
        self,
        voucher_id: str,
        merchant_id: str,
        by_owner: bool,
        order: Order,
        order_ref: str,
    ) -> object:
        v = self.vouchers[voucher_id]
        person = v.person_id if by_owner else next(p for p in ELIGIBLE if p != v.person_id)
        expected = self.expected_redeem(v, merchant_id, by_owner, order_ref, order.payable_fen)
        now = self.clock.now()
        if expected is not CheckoutCode.ONE_VOUCHER_PER_ORDER:  # a quote knows no order ref
            quote = quote_order(
                self.ledger.reader(), CAMPAIGN, now, merchant_id, person, order, voucher_id
            )
            assert quote.code is expected, (quote, expected)
        key = self.fresh("redeem")
        request = RedeemRequest(merchant_id, person, voucher_id, order_ref, order, key)

        answer: RedeemAnswer = submit_redeem(self.ledger, CAMPAIGN, self.ids, now, request).result(
            TIMEOUT_S
        )

        assert answer.code is expected, (answer, expected)
        if answer.redemption is None:
            assert expected is not CheckoutCode.OK
            return multiple()
        r = answer.redemption
        discount_fen = min(TYPES[v.type_id].discount_fen, order.payable_fen)
        assert (r.voucher_id, r.discount_fen) == (voucher_id, discount_fen)
        assert r.customer_pays_fen == order.payable_fen - discount_fen
        v.state = VoucherState.REDEEMED
        self.redeemed[r.id] = ModelRedemption(
            r.id, voucher_id, merchant_id, key, order_ref, order, order.payable_fen
        )
        return r.id

    @rule(
        target=redemptions,
        voucher_id=issued,
        where=st.sampled_from(["own category", "own category", "other category", "pending"]),
        by_owner=st.sampled_from([True, True, True, False]),
        above_fen=st.sampled_from([50_00, 0, -1_00]),
        promotion_fen=st.sampled_from([0, 10_00]),
    )
    def redeem_voucher(
        self,
        voucher_id: str,
        where: str,
        by_owner: bool,
        above_fen: int,
        promotion_fen: int,
    ) -> object:
        v = self.vouchers[voucher_id]
        merchant_id = {
            "own category": next(m for m in ENROLLED if MERCHANTS[m].category == v.category),
            "other category": next(m for m in ENROLLED if MERCHANTS[m].category != v.category),
            "pending": "m-pending",
        }[where]
        # the threshold is met on what the customer pays after the merchant's own promotion
        order = Order(TYPES[v.type_id].threshold_fen + above_fen, promotion_fen)
        return self.redeem(voucher_id, merchant_id, by_owner, order, self.fresh("order"))

    @rule(target=redemptions, redemption_id=redemptions, voucher_id=issued)
    def redeem_second_voucher_on_same_order(self, redemption_id: str, voucher_id: str) -> object:
        r = self.redeemed[redemption_id]
        order = Order(r.order.list_price_fen + 500_00)
        return self.redeem(voucher_id, r.merchant_id, True, order, r.order_ref)

    @rule(redemption_id=redemptions, same_order=st.booleans())
    def retry_redeem(self, redemption_id: str, same_order: bool) -> None:
        r = self.redeemed[redemption_id]
        v = self.vouchers[r.voucher_id]
        order = r.order if same_order else Order(r.order.list_price_fen + 1)
        request = RedeemRequest(r.merchant_id, v.person_id, v.id, r.order_ref, order, r.key)
        now = self.clock.now()

        answer = submit_redeem(self.ledger, CAMPAIGN, self.ids, now, request).result(TIMEOUT_S)

        if same_order:
            assert answer.code is CheckoutCode.OK, answer
            assert answer.redemption is not None and answer.redemption.id == redemption_id
        else:
            assert answer.code is CheckoutCode.IDEMPOTENCY_CONFLICT, answer

    # --- refunds ---------------------------------------------------------------------------

    def expected_refund(
        self, r: ModelRedemption, refund_fen: int, at_own_merchant: bool
    ) -> tuple[RefundCode, RefundOutcome | None]:
        if not at_own_merchant:
            return RefundCode.NOT_FOUND, None
        if not r.posted:
            return RefundCode.ALREADY_REVERSED, None
        v = self.vouchers[r.voucher_id]
        left_fen = r.base_fen - r.refunded_fen
        full = refund_fen == left_fen
        gives_back = full or left_fen - refund_fen < TYPES[v.type_id].threshold_fen
        if not gives_back:
            return RefundCode.OK, RefundOutcome.KEPT
        if self.clock.now() >= v.valid_until:
            return RefundCode.OK, RefundOutcome.LAPSED
        return RefundCode.OK, RefundOutcome.RESTORED

    def apply_refund(self, r: ModelRedemption, refund_fen: int, outcome: RefundOutcome) -> None:
        v = self.vouchers[r.voucher_id]
        if outcome is RefundOutcome.KEPT:
            r.refunded_fen += refund_fen
            return
        r.posted = False
        v.state = VoucherState.ISSUED if outcome is RefundOutcome.RESTORED else VoucherState.EXPIRED

    @rule(
        redemption_id=redemptions,
        how=st.sampled_from(
            [
                RefundKind(20, at_own_merchant=True),
                RefundKind(70, at_own_merchant=True),
                RefundKind(100, at_own_merchant=True),
                RefundKind(100, at_own_merchant=False),
            ]
        ),
    )
    def refund(self, redemption_id: str, how: RefundKind) -> None:
        r = self.redeemed[redemption_id]
        left_fen = r.base_fen - r.refunded_fen
        refund_fen = max(1, left_fen * how.percent // 100)
        at_own_merchant = how.at_own_merchant
        merchant_id = (
            r.merchant_id if at_own_merchant else next(m for m in ENROLLED if m != r.merchant_id)
        )
        code, outcome = self.expected_refund(r, refund_fen, at_own_merchant)
        request = RefundRequest(merchant_id, redemption_id, refund_fen, self.fresh("refund"))

        answer: RefundAnswer = submit_refund(
            self.ledger, CAMPAIGN, self.ids, self.clock.now(), request
        ).result(TIMEOUT_S)

        assert (answer.code, answer.outcome) == (code, outcome), answer
        if outcome is not None:
            self.apply_refund(r, refund_fen, outcome)

    # --- time ------------------------------------------------------------------------------

    @rule(
        step=st.sampled_from(
            [timedelta(minutes=10), timedelta(0), timedelta(hours=2), timedelta(hours=13)]
        ),
        then=st.sampled_from(["nothing", "expiry job", "engine restart"]),
    )
    def time_passes(self, step: timedelta, then: str) -> None:
        self.clock.advance(step)
        if then == "expiry job":
            self.expire_vouchers()
        elif then == "engine restart":
            self.restart_engine()

    def restart_engine(self) -> None:
        """A new engine rebuilds stock, limits and keys from the ledger alone."""
        self.engine.close()
        self.engine = EmbeddedClaimEngine(CAMPAIGN, self.ledger, RandomIds(), self._lock_path)

    def expire_vouchers(self) -> None:
        """The operator's expiry job; safe to run at any moment, however often."""
        now = self.clock.now()
        due = [
            v
            for v in self.vouchers.values()
            if v.state is VoucherState.ISSUED and v.valid_until <= now
        ]

        expired = expire(self.ledger, now).result(TIMEOUT_S)

        assert expired == len(due)
        for v in due:
            v.state = VoucherState.EXPIRED

    # --- invariants, read from the ledger --------------------------------------------------

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self.db.connect() as c:
            return [tuple(row) for row in c.exec_driver_sql(sql)]

    @invariant()
    def every_type_balances(self) -> None:
        issue_events = Counter(
            t
            for (t,) in self.rows(
                "SELECT v.type_id FROM voucher_events e JOIN vouchers v ON v.id = e.voucher_id"
                " WHERE e.event = 'issue'"
            )
        )
        by_state = {
            (t, s): n
            for t, s, n in self.rows(
                "SELECT type_id, state, COUNT(*) FROM vouchers GROUP BY type_id, state"
            )
        }
        for type_id, vtype in TYPES.items():
            issued = issue_events[type_id]
            available, redeemed, expired = (
                by_state.get((type_id, state.value), 0)
                for state in (VoucherState.ISSUED, VoucherState.REDEEMED, VoucherState.EXPIRED)
            )
            assert issued == available + redeemed + expired, type_id
            assert issued == sum(v.type_id == type_id for v in self.vouchers.values())
            assert issued <= vtype.count
            assert self.engine.remaining(type_id) + issued == vtype.count

    @invariant()
    def each_voucher_is_redeemed_at_most_once_at_a_time(self) -> None:
        (posted,) = self.rows("SELECT COUNT(*) FROM redemptions WHERE state = 'posted'")[0]
        (redeemed,) = self.rows("SELECT COUNT(*) FROM vouchers WHERE state = 'redeemed'")[0]
        assert posted == redeemed
        twice = self.rows(
            "SELECT voucher_id FROM redemptions WHERE state = 'posted'"
            " GROUP BY voucher_id HAVING COUNT(*) > 1"
        )
        assert twice == []
        unredeemed = self.rows(
            "SELECT r.id FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id"
            " WHERE r.state = 'posted' AND v.state != 'redeemed'"
        )
        assert unredeemed == []

    @invariant()
    def the_ledger_agrees_with_the_model(self) -> None:
        states = dict(self.rows("SELECT id, state FROM vouchers"))
        assert states == {v.id: v.state.value for v in self.vouchers.values()}
        posted = {i for (i,) in self.rows("SELECT id FROM redemptions WHERE state='posted'")}
        assert posted == {r.id for r in self.redeemed.values() if r.posted}

    @invariant()
    def each_voucher_state_is_the_replay_of_its_events(self) -> None:
        replayed: dict[str, VoucherState] = {}
        for voucher_id, event in self.rows(
            "SELECT voucher_id, event FROM voucher_events ORDER BY seq"
        ):
            if event == "issue":
                assert voucher_id not in replayed, f"{voucher_id} issued twice"
                replayed[voucher_id] = VoucherState.ISSUED
            else:
                replayed[voucher_id] = next_state(replayed[voucher_id], VoucherEvent(event))
        assert replayed == dict(self.rows("SELECT id, state FROM vouchers"))

    @invariant()
    def discounts_paid_stay_within_the_budget(self) -> None:
        (paid,) = self.rows(
            "SELECT COALESCE(SUM(discount_fen), 0) FROM redemptions WHERE state = 'posted'"
        )[0]
        assert paid <= R1.budget_fen


VoucherLifecycle.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestVoucherLifecycle = VoucherLifecycle.TestCase


def test_voucher_lifecycle_on_a_postgresql_ledger(postgres_server: PostgresServer) -> None:
    class OnPostgres(VoucherLifecycle):
        def __init__(self) -> None:
            super().__init__(lambda: fresh_postgres_url(postgres_server))

    run_state_machine_as_test(
        OnPostgres,
        settings=settings(
            max_examples=8,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
