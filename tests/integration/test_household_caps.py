"""Household caps under contention: several members claim at once; the ledger shows the cap held."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

import spec_text
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.lottery import SqlHouseholdStore
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.ports import ClaimRequest
from xfq.services.grab import submit_claim
from xfq.services.households import HouseholdRefused, declare_household
from xfq.spec import parse_campaign

ANSWER_TIMEOUT_S = 30.0
HOUSEHOLD_CAP = 3
SPEC_TEXT = (
    spec_text.campaign("households", "Household caps")
    + spec_text.round_(limits=f"per_type = 1\nper_round = 2\nper_household = {HOUSEHOLD_CAP}")
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 1000)
    + spec_text.voucher_type("r1-retail-100-20", 100, 20, 1000)
    + spec_text.voucher_type("r1-home-500-80", 500, 80, 1000)
)
CAMPAIGN = parse_campaign(SPEC_TEXT, "households.toml")
TYPES = [t.id for t in CAMPAIGN.round("r1").types]
DURING = CAMPAIGN.round("r1").opens_at + timedelta(seconds=1)
HEAD, MEMBERS = "head", ["m1", "m2", "m3", "m4"]


class Grab:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "ledger.db"
        self.ledger = SqlLedger(f"sqlite:///{self.path}")
        self.ledger.install_campaign(CAMPAIGN, SPEC_TEXT, DURING)
        self.engine = EmbeddedClaimEngine(CAMPAIGN, self.ledger, RandomIds(), directory / "lock")
        self.households = SqlHouseholdStore(self.ledger.engine)

    def claim(self, person: str, type_id: str, key: str) -> ClaimCode:
        request = ClaimRequest(Citizen(person, Residency.PERMANENT, True), type_id, key)
        return (
            submit_claim(self.engine, SimulatedClock(DURING), request).result(ANSWER_TIMEOUT_S).code
        )

    def held(self) -> Counter[str]:
        with sqlite3.connect(self.path) as db:
            rows = db.execute("SELECT person_id FROM vouchers").fetchall()
        return Counter(str(row[0]) for row in rows)

    def close(self) -> None:
        self.engine.close()
        self.ledger.close()


@pytest.fixture
def grab(tmp_path: Path) -> Iterator[Grab]:
    opened = Grab(tmp_path)
    yield opened
    opened.close()


def test_members_claiming_at_once_never_pass_the_household_cap(grab: Grab) -> None:
    declare_household(grab.households, grab.engine, HEAD, MEMBERS, DURING)
    household = [HEAD, *MEMBERS]
    # Every member sends every type several times with fresh keys, all at once.
    requests = [
        (person, type_id, f"{person}-{type_id}-{n}")
        for n in range(4)
        for person in [*household, "alone"]
        for type_id in TYPES
    ]
    workers = 8
    start = threading.Barrier(workers)

    def send(numbered: tuple[int, tuple[str, str, str]]) -> ClaimCode:
        if numbered[0] < workers:  # each worker's first request leaves at the same moment
            start.wait(ANSWER_TIMEOUT_S)
        return grab.claim(*numbered[1])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = Counter(pool.map(send, enumerate(requests)))
    held = grab.held()
    assert sum(held[p] for p in household) == HOUSEHOLD_CAP
    assert held["alone"] == 2  # someone outside any household keeps the per-person limit
    assert codes[ClaimCode.ISSUED] == HOUSEHOLD_CAP + 2
    assert grab.engine.household_held(HEAD, "r1") == HOUSEHOLD_CAP


def test_vouchers_held_before_joining_count_for_the_household(grab: Grab) -> None:
    assert grab.claim("m1", TYPES[0], "a") is ClaimCode.ISSUED
    assert grab.claim("m1", TYPES[1], "b") is ClaimCode.ISSUED
    declare_household(grab.households, grab.engine, HEAD, ["m1"], DURING)
    assert grab.claim(HEAD, TYPES[0], "c") is ClaimCode.ISSUED
    assert grab.claim(HEAD, TYPES[1], "d") is ClaimCode.LIMIT_REACHED


def test_a_restarted_engine_keeps_the_household_count(grab: Grab, tmp_path: Path) -> None:
    declare_household(grab.households, grab.engine, HEAD, MEMBERS, DURING)
    for person, type_id in [(HEAD, TYPES[0]), ("m1", TYPES[0]), ("m2", TYPES[0])]:
        assert grab.claim(person, type_id, "k") is ClaimCode.ISSUED
    grab.engine.close()
    grab.engine = EmbeddedClaimEngine(CAMPAIGN, grab.ledger, RandomIds(), tmp_path / "lock")
    assert grab.claim("m3", TYPES[0], "k") is ClaimCode.LIMIT_REACHED


def test_households_are_at_most_five_people_and_membership_is_exclusive(grab: Grab) -> None:
    with pytest.raises(HouseholdRefused, match="at most 5"):
        declare_household(grab.households, grab.engine, HEAD, [*MEMBERS, "m5"], DURING)
    declare_household(grab.households, grab.engine, HEAD, MEMBERS[:2], DURING)
    with pytest.raises(HouseholdRefused, match="already in another household: m1"):
        declare_household(grab.households, grab.engine, "other", ["m1"], DURING)
    assert declare_household(grab.households, grab.engine, HEAD, MEMBERS, DURING) == sorted(
        [HEAD, *MEMBERS]
    )
    with pytest.raises(HouseholdRefused, match="this would make 6"):
        declare_household(grab.households, grab.engine, HEAD, ["m5"], DURING)


def test_reconcile_counts_households_against_their_cap(grab: Grab) -> None:
    from xfq.adapters.sql.figures import gather
    from xfq.services.reconcile import reconcile

    declare_household(grab.households, grab.engine, HEAD, MEMBERS, DURING)
    for person in (HEAD, "m1", "m2"):
        assert grab.claim(person, TYPES[0], "k") is ClaimCode.ISSUED
    assert reconcile(CAMPAIGN, gather(grab.ledger.engine))[1].ok
    with sqlite3.connect(grab.path) as db:  # a member's voucher written behind the engine's back
        db.execute(
            "INSERT INTO vouchers SELECT 'forged', type_id, round_id, category, 'm3', 'x', state,"
            " issued_at_us, valid_from_us, valid_until_us FROM vouchers LIMIT 1"
        )
    limits = reconcile(CAMPAIGN, gather(grab.ledger.engine))[1]
    assert not limits.ok and "1 person/type" in limits.detail
