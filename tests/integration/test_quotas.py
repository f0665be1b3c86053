"""Quotas under contention: the assisted channel's reserve and districts' shares never oversold,
and each pool is kept apart from the others (checked from the ledger itself)."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

import spec_text
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.rollover import RolloverMove
from xfq.ports import ClaimAnswer, ClaimRequest, Reply
from xfq.spec import parse_campaign

ANSWER_TIMEOUT_S = 30.0
RESERVED = "r1-retail-30-6"  # 40: 10 for the assisted channel, 30 for the app
SPLIT = "r1-home-500-80"  # 30: 5 assisted, 10 for east, 15 for west
SPEC_TEXT = (
    spec_text.campaign("quotas", "Quotas")
    + spec_text.round_(limits="per_type = 1\nper_round = 2")
    + spec_text.voucher_type(RESERVED, 30, 6, 40)
    + "assisted = 10\n"
    + spec_text.voucher_type(SPLIT, 500, 80, 30)
    + "assisted = 5\ndistricts = { east = 10, west = 15 }\n"
)
CAMPAIGN = parse_campaign(SPEC_TEXT, "quotas.toml")
DURING = CAMPAIGN.round("r1").opens_at + timedelta(seconds=1)


class Grab:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ledger = SqlLedger(f"sqlite:///{directory / 'ledger.db'}")
        self.ledger.install_campaign(CAMPAIGN, SPEC_TEXT, DURING)
        self.engine = self.start()

    def start(self) -> EmbeddedClaimEngine:
        return EmbeddedClaimEngine(CAMPAIGN, self.ledger, RandomIds(), self.directory / "lock")

    def claim(
        self, person: str, type_id: str, district: str | None = None, assisted: bool = False
    ) -> ClaimCode:
        citizen = Citizen(person, Residency.PERMANENT, True, district)
        request = ClaimRequest(citizen, type_id, f"{person}-{type_id}")
        answered: Future[ClaimAnswer] = Future()

        def reply(answer: ClaimAnswer | BaseException) -> None:
            if isinstance(answer, BaseException):
                answered.set_exception(answer)
            else:
                answered.set_result(answer)

        submit: Callable[[ClaimRequest, object, Reply], None]
        submit = self.engine.submit_assisted if assisted else self.engine.submit  # type: ignore[assignment]
        submit(request, DURING, reply)
        return answered.result(ANSWER_TIMEOUT_S).code

    def issued_by_pool(self) -> Counter[str]:
        with sqlite3.connect(self.directory / "ledger.db") as db:
            rows = db.execute(
                "SELECT v.type_id, p.pool FROM vouchers v"
                " LEFT JOIN voucher_pools p ON p.voucher_id = v.id"
            ).fetchall()
        return Counter(str(pool or type_id) for type_id, pool in rows)


@pytest.fixture
def grab(tmp_path: Path) -> Iterator[Grab]:
    opened = Grab(tmp_path)
    yield opened
    opened.engine.close()
    opened.ledger.close()


def test_pools_are_never_oversold_and_stay_apart_under_contention(grab: Grab) -> None:
    districts = ["east", "west", None, "north"]
    requests = [
        (f"p{n:03d}", type_id, districts[n % 4], n % 5 == 0)  # a fifth come to a service desk
        for n in range(240)
        for type_id in (RESERVED, SPLIT)
    ]
    random.Random(3).shuffle(requests)
    workers = 8
    start = threading.Barrier(workers)

    def send(numbered: tuple[int, tuple[str, str, str | None, bool]]) -> ClaimCode:
        if numbered[0] < workers:
            start.wait(ANSWER_TIMEOUT_S)
        return grab.claim(*numbered[1])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = Counter(pool.map(send, enumerate(requests)))
    issued = grab.issued_by_pool()
    assert issued == {
        RESERVED: 30,
        f"{RESERVED}#assisted": 10,
        f"{SPLIT}@east": 10,
        f"{SPLIT}@west": 15,
        f"{SPLIT}#assisted": 5,
    }
    assert codes[ClaimCode.ISSUED] == 70
    assert codes[ClaimCode.NOT_ELIGIBLE] > 0  # no district, or one without a share
    assert grab.engine.stock() == {RESERVED: 0, SPLIT: 0}


def test_a_restarted_engine_knows_which_pool_each_voucher_came_from(grab: Grab) -> None:
    assert grab.claim("a", RESERVED, assisted=True) is ClaimCode.ISSUED
    assert grab.claim("b", SPLIT, district="east") is ClaimCode.ISSUED
    assert grab.claim("c", SPLIT, assisted=True) is ClaimCode.ISSUED
    before = grab.engine.pool_stock()
    grab.engine.close()
    grab.engine = grab.start()
    assert grab.engine.pool_stock() == before
    assert before[f"{RESERVED}#assisted"] == 9 and before[RESERVED] == 30
    assert before[f"{SPLIT}@east"] == 9 and before[f"{SPLIT}#assisted"] == 4


def test_claims_outside_a_districts_share_are_refused_with_the_reason(grab: Grab) -> None:
    assert grab.claim("a", SPLIT) is ClaimCode.NOT_ELIGIBLE
    assert grab.claim("b", SPLIT, district="north") is ClaimCode.NOT_ELIGIBLE
    for n in range(10):
        assert grab.claim(f"e{n}", SPLIT, district="east") is ClaimCode.ISSUED
    assert grab.claim("e10", SPLIT, district="east") is ClaimCode.SOLD_OUT
    assert grab.claim("w0", SPLIT, district="west") is ClaimCode.ISSUED


def test_reconcile_checks_the_pools_and_finds_an_oversold_one(grab: Grab) -> None:
    from xfq.adapters.sql.figures import gather
    from xfq.services.reconcile import reconcile

    for n in range(10):
        assert grab.claim(f"e{n}", SPLIT, district="east") is ClaimCode.ISSUED
    first = reconcile(CAMPAIGN, gather(grab.ledger.engine))[0]
    assert first.ok and "quota pools over their count: 0" in first.detail
    with sqlite3.connect(grab.directory / "ledger.db") as db:  # a forged eleventh from east
        db.execute("INSERT INTO voucher_pools VALUES ('forged', ?)", (f"{SPLIT}@east",))
    broken = reconcile(CAMPAIGN, gather(grab.ledger.engine))[0]
    assert not broken.ok and "quota pools over their count: 1" in broken.detail


def test_rolled_over_stock_of_a_split_type_is_shared_by_its_districts(grab: Grab) -> None:
    for n in range(10):
        assert grab.claim(f"e{n}", SPLIT, district="east") is ClaimCode.ISSUED
    rolled_in = RolloverMove("r0", "r0-home-500-80", "r1", SPLIT, 2, 0, 160_00, 2, 0)
    assert grab.engine.top_up([rolled_in]) == 2  # as a rollover into this round does
    assert grab.engine.top_up([rolled_in]) == 0  # once, however often it is given
    assert grab.claim("e10", SPLIT, district="east") is ClaimCode.ISSUED
    assert grab.claim("e11", SPLIT, district="east") is ClaimCode.ISSUED
    assert grab.claim("e12", SPLIT, district="east") is ClaimCode.SOLD_OUT
    assert grab.claim("x", SPLIT) is ClaimCode.NOT_ELIGIBLE  # still only people of a district
    assert grab.issued_by_pool()[SPLIT] == 2
