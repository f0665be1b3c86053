"""The waiting room: random but stable order at the opening second, then first come; tokens
that cannot be forged, moved to another person or round, or used twice."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from factories import local

from xfq.adapters.ids import RandomIds
from xfq.domain.waiting_room import (
    TokenProblem,
    WaitingRoom,
    WaitingRoomRules,
    issue_token,
    read_token,
)

OPENS_AT = local(2022, 3, 5, 10)
RULES = WaitingRoomRules(
    timedelta(minutes=10), admit_per_second=50, token_ttl=timedelta(seconds=60)
)
KEY = b"k" * 32
PEOPLE = [f"p{n:03d}" for n in range(200)]


def room(key: bytes = KEY) -> WaitingRoom:
    return WaitingRoom(key, "r6", OPENS_AT, RULES)


def places(r: WaitingRoom, people: list[str]) -> list[int | None]:
    return [r.where(p, OPENS_AT).place for p in people]


def filled(order: list[str], key: bytes = KEY) -> WaitingRoom:
    r = room(key)
    for n, person in enumerate(order):
        assert r.join(person, OPENS_AT - timedelta(minutes=9) + timedelta(seconds=n)).place is None
    return r


def test_early_arrivals_get_a_random_order_at_the_opening_second() -> None:
    drawn = places(filled(PEOPLE), PEOPLE)
    assert sorted(drawn) == list(range(1, 201))  # type: ignore[type-var]
    assert drawn != list(range(1, 201))  # not the order of arrival
    first_half = sum(1 for p in drawn[:100] if p is not None and p <= 100)
    assert 30 < first_half < 70  # the first to arrive are not favoured (50 expected)


def test_the_order_is_stable_whenever_and_in_whatever_order_people_came() -> None:
    shuffled = PEOPLE[:]
    random.Random(5).shuffle(shuffled)
    drawn = places(filled(PEOPLE), PEOPLE)
    assert places(filled(shuffled), PEOPLE) == drawn  # arrival order does not matter
    again = filled(PEOPLE)
    assert [again.where(p, OPENS_AT + timedelta(minutes=3)).place for p in PEOPLE] == drawn
    assert places(filled(PEOPLE, b"other key" * 4), PEOPLE) != drawn  # unpredictable sans key


def test_later_arrivals_queue_behind_in_arrival_order_and_batches_are_admitted() -> None:
    r = filled(PEOPLE[:100])
    late = [r.join(f"late{n}", OPENS_AT + timedelta(seconds=n)).place for n in range(3)]
    assert late == [101, 102, 103]
    assert r.join("late0", OPENS_AT + timedelta(seconds=9)).place == 101  # a repeat keeps it
    assert r.where("late0", OPENS_AT + timedelta(seconds=1)).admitted is False  # 100 admitted
    assert r.where("late0", OPENS_AT + timedelta(seconds=2)).admitted is True  # 150
    assert r.where("late2", OPENS_AT + timedelta(seconds=1)).ahead == 2


def test_joining_before_the_room_opens_is_refused() -> None:
    with pytest.raises(ValueError, match="opens at"):
        room().join("p1", OPENS_AT - timedelta(minutes=11))


def test_a_token_reads_back_only_for_its_person_round_and_time() -> None:
    now = OPENS_AT
    token = issue_token(KEY, "w1", "r6", "alice", now + timedelta(seconds=60))
    admission = read_token(KEY, token, "r6", "alice", now)
    assert not isinstance(admission, TokenProblem) and admission.token_id == "w1"
    assert read_token(KEY, token, "r6", "bob", now) is TokenProblem.OTHER
    assert read_token(KEY, token, "r7", "alice", now) is TokenProblem.OTHER
    assert (
        read_token(KEY, token, "r6", "alice", now + timedelta(seconds=60)) is TokenProblem.EXPIRED
    )
    assert read_token(b"x" * 32, token, "r6", "alice", now) is TokenProblem.FORGED
    prefix, _payload, signature = token.split(".")
    bob = issue_token(KEY, "w1", "r6", "bob", now + timedelta(seconds=60)).split(".")[1]
    assert read_token(KEY, f"{prefix}.{bob}.{signature}", "r6", "bob", now) is TokenProblem.FORGED
    assert read_token(KEY, "garbage", "r6", "alice", now) is TokenProblem.MALFORMED


def test_ids_for_tokens_are_unguessable() -> None:
    ids = RandomIds()
    assert len({ids.new_id("w") for _ in range(1000)}) == 1000
