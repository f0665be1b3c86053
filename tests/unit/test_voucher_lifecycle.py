"""A voucher's lifecycle: issued → redeemed (→ issued again on a refund) | expired."""

from __future__ import annotations

import itertools

import pytest
from factories import make_voucher
from hypothesis import given
from hypothesis import strategies as st

from xfq.domain.errors import IllegalTransition, XfqError
from xfq.domain.voucher import VoucherEvent, VoucherState, next_state

S, E = VoucherState, VoucherEvent

LEGAL = {
    (S.ISSUED, E.REDEEM): S.REDEEMED,  # paid with at a till
    (S.REDEEMED, E.RESTORE): S.ISSUED,  # refunded inside validity: back in the wallet
    (S.REDEEMED, E.LAPSE): S.EXPIRED,  # refunded after validity: gone
    (S.ISSUED, E.EXPIRE): S.EXPIRED,  # never used in time
}

ILLEGAL = [pair for pair in itertools.product(S, E) if pair not in LEGAL]


def test_the_tables_cover_every_state_and_event() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(S) * len(E) == 12


@pytest.mark.parametrize(("state", "event", "after"), [(s, e, a) for (s, e), a in LEGAL.items()])
def test_legal_transitions(state: VoucherState, event: VoucherEvent, after: VoucherState) -> None:
    assert next_state(state, event) is after
    voucher = make_voucher(state=state)
    moved = voucher.apply(event)
    assert moved.state is after
    assert moved == make_voucher(state=after)  # nothing but the state changes
    assert voucher.state is state  # the original value is untouched


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_transitions_raise(state: VoucherState, event: VoucherEvent) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_state(state, event)
    assert str(info.value) == f"a voucher that is {state} cannot {event}"
    assert info.value.code == "illegal_transition"
    assert isinstance(info.value, XfqError)
    with pytest.raises(IllegalTransition):
        make_voucher(state=state).apply(event)


def test_a_voucher_cannot_be_redeemed_twice() -> None:
    redeemed = make_voucher().apply(E.REDEEM)
    with pytest.raises(IllegalTransition, match="redeemed cannot redeem"):
        redeemed.apply(E.REDEEM)


def test_a_restored_voucher_can_be_used_again() -> None:
    voucher = make_voucher().apply(E.REDEEM).apply(E.RESTORE).apply(E.REDEEM)
    assert voucher.state is S.REDEEMED


@pytest.mark.parametrize("event", list(E))
def test_expired_is_final(event: VoucherEvent) -> None:
    with pytest.raises(IllegalTransition):
        make_voucher(state=S.EXPIRED).apply(event)


@given(st.lists(st.sampled_from(list(E)), max_size=30))
def test_any_sequence_of_events_follows_the_table_and_never_double_redeems(
    events: list[VoucherEvent],
) -> None:
    """Refused events leave the voucher as it was; redemptions outstanding stay 0 or 1."""
    voucher = make_voucher()
    outstanding = 0
    for event in events:
        before = voucher.state
        try:
            voucher = voucher.apply(event)
        except IllegalTransition:
            assert (before, event) not in LEGAL
            continue
        assert voucher.state is LEGAL[(before, event)]
        outstanding += {E.REDEEM: 1, E.RESTORE: -1, E.LAPSE: -1, E.EXPIRE: 0}[event]
        assert outstanding in (0, 1)
        assert (outstanding == 1) is (voucher.state is S.REDEEMED)
