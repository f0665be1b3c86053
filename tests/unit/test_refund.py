"""What a refund does to a voucher that paid for the order, under each refund policy."""

from __future__ import annotations

from datetime import datetime

import pytest
from factories import ONE_US, R6_VALID_UNTIL, local, make_refund_policy, make_voucher, utc

from xfq.domain.campaign import PartialRefund, RefundPolicy
from xfq.domain.refund import RefundDecision, RefundOutcome, decide_refund
from xfq.domain.voucher import VoucherEvent, VoucherState

THRESHOLD_FEN = 180_00  # 满180减40
BASE_FEN = 200_00  # the customer paid 200 before the voucher
INSIDE = local(2022, 3, 9, 15)

# Full refunds restore; a partial refund keeps the voucher used if 满X is still met.
REFUND_POLICY = make_refund_policy()
FORFEIT = make_refund_policy(partial=PartialRefund.FORFEIT)
RESTORE = make_refund_policy(partial=PartialRefund.RESTORE)


def refund(
    refund_fen: int, *, policy: RefundPolicy = REFUND_POLICY, now: datetime = INSIDE
) -> RefundDecision:
    return decide_refund(policy, THRESHOLD_FEN, BASE_FEN, refund_fen, R6_VALID_UNTIL, now)


# --- full refunds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (INSIDE, RefundOutcome.RESTORED),
        (local(2022, 3, 11, 23, 59, 59, 999_999), RefundOutcome.RESTORED),
        (local(2022, 3, 12), RefundOutcome.LAPSED),
        (utc(2022, 3, 11, 15, 59, 59), RefundOutcome.RESTORED),
        (utc(2022, 3, 11, 16), RefundOutcome.LAPSED),
        (local(2022, 3, 20), RefundOutcome.LAPSED),
    ],
)
def test_a_full_refund_gives_the_voucher_back_only_while_it_is_valid(
    now: datetime, outcome: RefundOutcome
) -> None:
    decision = refund(BASE_FEN, now=now)
    assert decision.outcome is outcome
    assert decision.reverses_redemption  # the city never pays for a wholly refunded order


def test_a_full_refund_inside_validity_says_why() -> None:
    assert refund(BASE_FEN) == RefundDecision(RefundOutcome.RESTORED, "full refund")


def test_a_full_refund_after_validity_says_the_validity_ended() -> None:
    decision = refund(BASE_FEN, now=R6_VALID_UNTIL)
    assert decision.reason == "full refund; the voucher's validity has ended"


@pytest.mark.parametrize("partial", list(PartialRefund))
@pytest.mark.parametrize("now", [INSIDE, R6_VALID_UNTIL])
def test_a_full_refund_under_a_no_restore_policy_lapses_and_is_never_kept(
    partial: PartialRefund, now: datetime
) -> None:
    policy = make_refund_policy(full_refund_restores=False, partial=partial)
    decision = refund(BASE_FEN, policy=policy, now=now)
    assert decision.outcome is RefundOutcome.LAPSED
    assert decision.reason == "full refund; policy does not restore vouchers"
    assert decision.reverses_redemption
    assert decision.voucher_event is VoucherEvent.LAPSE


# --- partial refunds ----------------------------------------------------------------------------


@pytest.mark.parametrize("refund_fen", [1, 20_00, 20_01, BASE_FEN - 1])
def test_forfeit_keeps_the_voucher_used_after_any_partial_refund(refund_fen: int) -> None:
    decision = refund(refund_fen, policy=FORFEIT)
    assert decision == RefundDecision(
        RefundOutcome.KEPT, "partial refund, policy forfeits the voucher"
    )
    assert not decision.reverses_redemption
    assert decision.voucher_event is None


@pytest.mark.parametrize(
    ("refund_fen", "outcome"),
    [
        (10_00, RefundOutcome.KEPT),  # 190 left: 满180 still met
        (20_00, RefundOutcome.KEPT),  # exactly 180 left: still met
        (20_01, RefundOutcome.RESTORED),  # 179.99 left: no longer met
        (150_00, RefundOutcome.RESTORED),
        (BASE_FEN - 1, RefundOutcome.RESTORED),
    ],
)
def test_keep_if_threshold_met_depends_on_what_is_left(
    refund_fen: int, outcome: RefundOutcome
) -> None:
    assert refund(refund_fen).outcome is outcome


def test_keep_if_threshold_met_gives_reasons() -> None:
    assert refund(20_00).reason == "partial refund leaves the order above the threshold"
    assert refund(20_01).reason == "partial refund leaves the order below the threshold"


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (R6_VALID_UNTIL - ONE_US, RefundOutcome.RESTORED),
        (R6_VALID_UNTIL, RefundOutcome.LAPSED),
    ],
)
def test_keep_if_threshold_met_below_the_threshold_lapses_after_validity(
    now: datetime, outcome: RefundOutcome
) -> None:
    decision = refund(20_01, now=now)
    assert decision.outcome is outcome
    assert decision.reverses_redemption


def test_keep_if_threshold_met_above_the_threshold_stays_kept_after_validity() -> None:
    assert refund(10_00, now=R6_VALID_UNTIL).outcome is RefundOutcome.KEPT


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (INSIDE, RefundOutcome.RESTORED),
        (R6_VALID_UNTIL - ONE_US, RefundOutcome.RESTORED),
        (R6_VALID_UNTIL, RefundOutcome.LAPSED),
    ],
)
@pytest.mark.parametrize("refund_fen", [1, 10_00, 20_01])
def test_restore_gives_the_voucher_back_after_any_partial_refund_while_valid(
    refund_fen: int, now: datetime, outcome: RefundOutcome
) -> None:
    decision = refund(refund_fen, policy=RESTORE, now=now)
    assert decision.outcome is outcome
    assert decision.reason.startswith("partial refund, policy restores the voucher")


# --- the decision applied to the voucher ---------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "event", "state_after"),
    [
        (RefundOutcome.RESTORED, VoucherEvent.RESTORE, VoucherState.ISSUED),
        (RefundOutcome.LAPSED, VoucherEvent.LAPSE, VoucherState.EXPIRED),
    ],
)
def test_a_reversing_decision_moves_the_redeemed_voucher(
    outcome: RefundOutcome, event: VoucherEvent, state_after: VoucherState
) -> None:
    decision = RefundDecision(outcome, "")
    assert decision.reverses_redemption
    assert decision.voucher_event is event
    redeemed = make_voucher(state=VoucherState.REDEEMED)
    assert redeemed.apply(event).state is state_after


def test_a_kept_decision_leaves_the_voucher_alone() -> None:
    decision = RefundDecision(RefundOutcome.KEPT, "")
    assert not decision.reverses_redemption
    assert decision.voucher_event is None


# --- amounts that cannot be refunded ------------------------------------------------------------


@pytest.mark.parametrize("refund_fen", [0, -1, BASE_FEN + 1])
def test_a_refund_must_be_more_than_nothing_and_at_most_the_order(refund_fen: int) -> None:
    with pytest.raises(AssertionError):
        refund(refund_fen)
