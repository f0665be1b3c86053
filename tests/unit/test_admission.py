"""Admission control: a bound on claims in flight and on how long the oldest has waited."""

from __future__ import annotations

from xfq.api.admission import Admission, Shed, Ticket


def _ticket(admission: Admission, now_s: float) -> Ticket:
    entered = admission.enter(now_s)
    assert isinstance(entered, Ticket)
    return entered


def test_claims_past_the_in_flight_bound_are_shed_until_one_is_answered() -> None:
    admission = Admission(max_in_flight=2, max_wait_s=10)
    first = _ticket(admission, 0.0)
    _ticket(admission, 0.0)
    assert admission.enter(0.0) is Shed.IN_FLIGHT
    admission.leave(first)
    assert isinstance(admission.enter(0.0), Ticket)


def test_a_claim_waiting_too_long_sheds_new_ones_until_it_is_answered() -> None:
    admission = Admission(max_in_flight=100, max_wait_s=0.5)
    slow = _ticket(admission, 0.0)
    quick = _ticket(admission, 0.1)
    admission.leave(quick)
    assert isinstance(admission.enter(0.5), Ticket)  # exactly at the bound still waits
    assert admission.enter(0.51) is Shed.QUEUE_AGE
    admission.leave(slow)
    assert admission.oldest_wait_s(0.51) == 0.51 - 0.5  # the one admitted at 0.5 is oldest now


def test_answered_tickets_do_not_pile_up() -> None:
    admission = Admission(max_in_flight=4, max_wait_s=1)
    for n in range(10_000):
        admission.leave(_ticket(admission, n / 1000))
    assert admission.in_flight == 0 and admission.oldest_wait_s(10.0) == 0.0
    assert len(admission._order) == 0


def test_retry_after_is_at_least_a_second() -> None:
    assert Admission(1, 0.2).retry_after_s() == 1.0
    assert Admission(1, 3.0).retry_after_s() == 3.0
