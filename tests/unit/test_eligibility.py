"""Who may claim: the four residency kinds of the reference round, and presence in the city."""

from __future__ import annotations

import pytest
from factories import make_citizen, make_eligibility

from xfq.domain.eligibility import Residency


@pytest.mark.parametrize("residency", list(Residency))
def test_residents_workers_students_and_tourists_in_the_city_may_claim(
    residency: Residency,
) -> None:
    citizen = make_citizen(residency=residency, in_city=True)
    assert make_eligibility().refusal(citizen) is None


def test_a_person_without_a_known_residency_is_refused() -> None:
    refusal = make_eligibility().refusal(make_citizen(residency=None))
    assert refusal == "no residency kind is known for this person"


def test_a_claim_from_outside_the_city_is_refused_when_presence_is_required() -> None:
    refusal = make_eligibility().refusal(make_citizen(in_city=False))
    assert refusal == "the claim must be made from inside the city"


def test_a_claim_from_outside_the_city_is_allowed_when_presence_is_not_required() -> None:
    eligibility = make_eligibility(require_in_city=False)
    assert eligibility.refusal(make_citizen(in_city=False)) is None


def test_a_residency_kind_not_listed_is_refused_and_the_reason_lists_the_eligible_ones() -> None:
    eligibility = make_eligibility(residencies=frozenset({Residency.STUDY, Residency.PERMANENT}))
    refusal = eligibility.refusal(make_citizen(residency=Residency.VISIT))
    assert refusal == "residency 'visit' is not eligible (eligible: permanent, study)"


def test_a_listed_residency_kind_is_accepted_when_the_list_is_narrowed() -> None:
    eligibility = make_eligibility(residencies=frozenset({Residency.PERMANENT}))
    assert eligibility.refusal(make_citizen(residency=Residency.PERMANENT)) is None
    assert eligibility.refusal(make_citizen(residency=Residency.WORK)) is not None


def test_an_unknown_residency_is_reported_before_being_outside_the_city() -> None:
    # The person can fix their identity record; moving into town will not help without it.
    refusal = make_eligibility().refusal(make_citizen(residency=None, in_city=False))
    assert refusal == "no residency kind is known for this person"


def test_an_unlisted_residency_is_reported_before_being_outside_the_city() -> None:
    eligibility = make_eligibility(residencies=frozenset({Residency.PERMANENT}))
    refusal = eligibility.refusal(make_citizen(residency=Residency.VISIT, in_city=False))
    assert refusal is not None and "not eligible" in refusal
