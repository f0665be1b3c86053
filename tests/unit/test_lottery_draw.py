"""The lottery draw: deterministic, within stock and caps, and verifiable from published files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xfq.domain.lottery import (
    DrawInput,
    LotteryFileError,
    Registration,
    draw,
    make_record,
    parse_record,
    parse_registration_list,
    registration_list,
    seed_commitment,
    sha256_hex,
    verify,
)

SEED = "11" * 32
OTHER_SEED = "22" * 32
TYPES = {"r1-retail-30-6": "retail", "r1-retail-180-40": "retail", "r1-home-500-80": "home"}


def given_input(**overrides: object) -> DrawInput:
    base = DrawInput(
        campaign_id="c",
        round_id="r1",
        stock={"r1-retail-30-6": 30, "r1-retail-180-40": 10, "r1-home-500-80": 5},
        categories=TYPES,
        per_category=None,
        per_round=None,
        max_wins_per_week=None,
        max_wins_per_campaign=None,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def people_registering(n: int, types: tuple[str, ...] = tuple(TYPES)) -> list[Registration]:
    return [Registration(f"p{i:04d}", t) for i in range(n) for t in types]


def reimplemented_draw(
    seed_hex: str, registrations: list[Registration], g: DrawInput
) -> list[Registration]:
    """The module docstring's algorithm written again from the text, as an outsider would."""
    seed = bytes.fromhex(seed_hex)

    def ticket(r: Registration) -> bytes:
        return hashlib.sha256(seed + f"{g.round_id}\n{r.type_id}\n{r.person_id}".encode()).digest()

    left = dict(g.stock)
    wins: Counter[str] = Counter()
    in_category: Counter[tuple[str, str]] = Counter()
    in_household: Counter[str] = Counter()
    out = []
    for r in sorted(set(registrations), key=lambda r: (ticket(r), r.type_id, r.person_id)):
        category = g.categories[r.type_id]
        caps = [
            (g.per_category, in_category[(r.person_id, category)]),
            (g.per_round, wins[r.person_id]),
            (g.max_wins_per_week, g.prior_week.get(r.person_id, 0) + wins[r.person_id]),
            (g.max_wins_per_campaign, g.prior_campaign.get(r.person_id, 0) + wins[r.person_id]),
        ]
        head = g.households.get(r.person_id)
        if head is not None:
            caps.append((g.per_household, in_household[head]))
        if left[r.type_id] > 0 and all(cap is None or n < cap for cap, n in caps):
            left[r.type_id] -= 1
            wins[r.person_id] += 1
            in_category[(r.person_id, category)] += 1
            if head is not None:
                in_household[head] += 1
            out.append(r)
    return out


def test_the_same_inputs_draw_the_same_winners_whatever_the_order_of_registration() -> None:
    registrations = people_registering(100)
    shuffled = registrations[:]
    random.Random(7).shuffle(shuffled)
    first = draw(SEED, registrations, given_input())
    assert draw(SEED, shuffled, given_input()) == first
    assert len(first) == 45  # 30 + 10 + 5: everything is given when demand exceeds stock


def test_another_seed_draws_other_winners() -> None:
    registrations = people_registering(100)
    assert set(draw(SEED, registrations, given_input())) != set(
        draw(OTHER_SEED, registrations, given_input())
    )


def test_the_documented_algorithm_reimplemented_gives_the_same_winners() -> None:
    households = {f"p{n:04d}": "p0000" for n in range(5)}
    g = given_input(
        per_category=1,
        per_round=2,
        max_wins_per_week=2,
        prior_week={"p0001": 1},
        per_household=2,
        households=households,
    )
    registrations = people_registering(40)
    assert draw(SEED, registrations, g) == reimplemented_draw(SEED, registrations, g)


def test_caps_within_a_round_hold() -> None:
    winners = draw(SEED, people_registering(20), given_input(per_category=1, per_round=1))
    per_person = Counter(w.person_id for w in winners)
    assert max(per_person.values()) == 1
    assert len(winners) == 20  # stock 45 > 20 people, one win each


def test_caps_across_rounds_count_earlier_wins() -> None:
    registrations = people_registering(10)
    g = given_input(
        max_wins_per_week=1,
        max_wins_per_campaign=3,
        prior_week={"p0000": 1},  # won this week already
        prior_campaign={"p0001": 3, "p0000": 1},  # p0001 used up the campaign's cap
    )
    winners = draw(SEED, registrations, g)
    won = Counter(w.person_id for w in winners)
    assert "p0000" not in won and "p0001" not in won
    assert set(won.values()) == {1}  # at most one a week for everyone else
    assert len(won) == 8


@settings(max_examples=60, deadline=None)
@given(
    people=st.integers(min_value=0, max_value=60),
    stock=st.tuples(*(st.integers(min_value=0, max_value=40) for _ in TYPES)),
    per_round=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
    seed=st.binary(min_size=32, max_size=32),
)
def test_the_draw_never_gives_more_than_the_stock_nor_past_a_cap(
    people: int, stock: tuple[int, ...], per_round: int | None, seed: bytes
) -> None:
    g = given_input(stock=dict(zip(TYPES, stock, strict=True)), per_round=per_round)
    winners = draw(seed.hex(), people_registering(people), g)
    given_of_type = Counter(w.type_id for w in winners)
    assert all(given_of_type[t] <= n for t, n in g.stock.items())
    assert len(set(winners)) == len(winners)
    if per_round is not None:
        assert all(n <= per_round for n in Counter(w.person_id for w in winners).values())
    demand = Counter(t for t in TYPES for _ in range(people))
    if per_round is None:  # nobody is capped: every type gives min(stock, demand)
        assert all(given_of_type[t] == min(g.stock[t], demand[t]) for t in TYPES)


def published(registrations: list[Registration]) -> tuple[str, bytes]:
    record = make_record(SEED, registrations, given_input(per_round=1))
    return record.to_json(), registration_list(registrations)


def test_an_honest_draw_verifies() -> None:
    registrations = people_registering(30)
    text, listed = published(registrations)
    checks = verify(parse_record(text), listed, seed_commitment(SEED), sha256_hex(listed))
    assert [c.ok for c in checks] == [True] * 5, checks


def test_a_list_with_a_registration_added_after_freezing_is_detected() -> None:
    registrations = people_registering(30)
    text, _ = published(registrations)
    tampered = registration_list([*registrations, Registration("p9999", "r1-home-500-80")])
    checks = verify(parse_record(text), tampered)
    assert not checks[0].ok and "computed" in checks[0].detail


def test_a_draw_file_rewritten_for_a_tampered_list_still_fails_against_the_frozen_hash() -> None:
    registrations = people_registering(30)
    _, honest_list = published(registrations)
    smaller = registrations[3:]  # three people's registrations dropped before the draw
    text, listed = published(smaller)
    checks = verify(parse_record(text), listed, registrations_sha256=sha256_hex(honest_list))
    assert [c.what for c in checks if not c.ok] == [
        "draw file names the list hash published at freezing"
    ]


def test_another_seed_than_the_committed_one_is_detected() -> None:
    registrations = people_registering(30)
    text, listed = published(registrations)
    data = json.loads(text)
    data["seed"] = OTHER_SEED  # the operator reveals another seed than committed
    checks = verify(parse_record(json.dumps(data)), listed)
    failed = [c.what for c in checks if not c.ok]
    assert failed == ["seed matches its commitment", "winners re-drawn match the published winners"]


def test_a_new_commitment_in_the_draw_file_is_caught_by_the_one_noted_earlier() -> None:
    registrations = people_registering(30)
    swapped = make_record(OTHER_SEED, registrations, given_input(per_round=1))
    checks = verify(swapped, registration_list(registrations), commitment=seed_commitment(SEED))
    assert [c.ok for c in checks].count(False) == 1
    assert not next(c for c in checks if "published before" in c.what).ok


def test_edited_winners_are_detected() -> None:
    registrations = people_registering(30)
    text, listed = published(registrations)
    data = json.loads(text)
    data["winners"][0] = ["p9999", data["winners"][0][1]]
    checks = verify(parse_record(json.dumps(data)), listed)
    assert [c.ok for c in checks] == [True, True, False]
    assert "first: p9999" in checks[-1].detail
    assert "1 drawn winner(s) not published" in checks[-1].detail


def test_a_list_not_in_canonical_form_is_refused() -> None:
    with pytest.raises(LotteryFileError, match="canonical"):
        parse_registration_list(b"p2\tt\np1\tt\n")
    with pytest.raises(LotteryFileError, match="line 1"):
        parse_registration_list(b"p1 t\n")


def test_a_seed_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(LotteryFileError, match="32 bytes"):
        seed_commitment("ab")


def test_a_household_wins_at_most_its_cap() -> None:
    households = {f"p{n:04d}": "p0000" for n in range(10)}  # ten people, one household
    g = given_input(per_household=3, households=households)
    winners = draw(SEED, people_registering(10), g)
    assert len(winners) == 3
    record = make_record(SEED, people_registering(10), g)
    assert parse_record(record.to_json()) == record  # households travel in draw.json
