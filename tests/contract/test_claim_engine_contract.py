"""The contract of the `ClaimEngine` port, run against every claim engine.

Each engine joins the suite with a rig (see `ENGINE_RIGS`): something that starts the engine on
a fresh ledger, restarts it on the same ledger, reads back what the ledger holds, and can hold
back commits so that a claim stays in flight. Every test below is written against the port and
the rig only, so a new engine passes the suite or shows where it breaks the contract.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import pytest

import spec_text
from redis_rig import RedisRig
from servers.redis_fixtures import (  # noqa: F401  # noqa: F401
    redis_cluster,
    redis_cluster_session,
    redis_server,
    redis_server_session,
)
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.campaign import Campaign
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.errors import XfqError
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import ClaimAnswer, ClaimEngine, ClaimRequest, LedgerTx
from xfq.services.grab import submit_claim
from xfq.spec import parse_campaign

ANSWER_TIMEOUT_S = 10.0
TZ = ZoneInfo("Asia/Shanghai")

# Round r1 opens Saturday 2022-03-05 10:00 in Taiyuan; its vouchers are usable for 7 calendar
# days counting the opening day, so through Friday 2022-03-11. Round r2 follows a week later.
SPEC_TEXT = (
    spec_text.campaign("contract", "Claim engine contract", ("retail", "home", "online"))
    + spec_text.round_(residencies=("permanent", "work", "study"))
    + spec_text.voucher_type("r1-retail-180-40", 180, 40, 3)
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 100, per_person=2)
    + spec_text.voucher_type("r1-retail-100-20", 100, 20, 100)
    + spec_text.voucher_type("r1-home-500-80", 500, 80, 100)
    + spec_text.voucher_type("r1-online-30-6", 30, 6, 100)
    + spec_text.round_(
        "r2",
        2,
        "2022-03-12T10:00:00",
        "2022-03-19T00:00:00",
        limits="per_type = 1",
        residencies=("permanent", "work", "study"),
        name="Round two",
    )
    + spec_text.voucher_type("r2-online-30-6", 30, 6, 100)
)

CAMPAIGN = parse_campaign(SPEC_TEXT, "contract-campaign.toml")
SCARCE = "r1-retail-180-40"  # count 3
RETAIL_TWO_EACH = "r1-retail-30-6"  # per_person 2
RETAIL = "r1-retail-100-20"
HOME = "r1-home-500-80"
ONLINE = "r1-online-30-6"
NEXT_ROUND = "r2-online-30-6"
R1 = CAMPAIGN.round("r1")
OPENS_AT = R1.opens_at
CLOSES_AT = R1.claim_closes_at
DURING = OPENS_AT + timedelta(seconds=3)
R1_VALID_UNTIL = datetime(2022, 3, 12, tzinfo=TZ)  # midnight after Friday 2022-03-11


class EngineRig(Protocol):
    """What the suite needs around one engine on one ledger."""

    def start(self) -> ClaimEngine:
        """Start the engine on this rig's ledger: a fresh one at first, the same one again
        after `stop` (a restart)."""
        ...

    def stop(self) -> None:
        """Stop the engine and let go of the ledger, as an orderly shutdown does."""
        ...

    def stored_vouchers(self, person_id: str) -> list[Voucher]:
        """The person's vouchers as the durable ledger holds them."""
        ...

    def stall_commits(self) -> AbstractContextManager[None]:
        """While inside, nothing the engine decides can become durable."""
        ...

    def failing_commits(self) -> AbstractContextManager[None]:
        """While inside, the store refuses to record any claim (a full disk, a lost server)."""
        ...


class EmbeddedRig:
    """The embedded engine over a SQLite ledger in a directory of its own."""

    def __init__(self, directory: Path, campaign: Campaign, spec_text: str) -> None:
        self._path = directory / "ledger.db"
        self._url = f"sqlite:///{self._path}"
        self._lock_path = directory / "ledger.db.lock"
        self._campaign = campaign
        self._spec_text = spec_text
        self._ledger: SqlLedger | None = None
        self._engine: EmbeddedClaimEngine | None = None

    def start(self) -> ClaimEngine:
        assert self._engine is None, "stop the engine before starting it again"
        self._ledger = SqlLedger(self._url)
        self._ledger.install_campaign(self._campaign, self._spec_text, OPENS_AT)
        self._engine = EmbeddedClaimEngine(
            self._campaign, self._ledger, RandomIds(), self._lock_path
        )
        return self._engine

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def stored_vouchers(self, person_id: str) -> list[Voucher]:
        assert self._ledger is not None
        return self._ledger.reader().vouchers_of(person_id)

    @contextmanager
    def stall_commits(self) -> Iterator[None]:
        # The ledger has one writer: a unit of work that waits keeps every later write queued.
        assert self._ledger is not None
        entered, release = threading.Event(), threading.Event()

        def hold(_tx: LedgerTx) -> None:
            entered.set()
            release.wait(ANSWER_TIMEOUT_S)

        held = self._ledger.write(hold)
        assert entered.wait(ANSWER_TIMEOUT_S), "the ledger writer did not pick up the hold"
        try:
            yield
        finally:
            release.set()
            held.result(ANSWER_TIMEOUT_S)

    @contextmanager
    def failing_commits(self) -> Iterator[None]:
        # Another connection adds a trigger that aborts every insert of a voucher.
        with sqlite3.connect(self._path) as db:
            db.execute(
                "CREATE TRIGGER refuse_vouchers BEFORE INSERT ON vouchers"
                " BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
            )
        try:
            yield
        finally:
            with sqlite3.connect(self._path) as db:
                db.execute("DROP TRIGGER refuse_vouchers")


def redis_rig(servers: str, shards: int) -> RigFactory:
    """The Redis engine on the session's Redis (`redis_server` or `redis_cluster`)."""

    def make(
        directory: Path, campaign: Campaign, spec_text: str, request: pytest.FixtureRequest
    ) -> EngineRig:
        return RedisRig(directory, campaign, spec_text, request.getfixturevalue(servers), shards)

    return make


RigFactory = Callable[[Path, Campaign, str, pytest.FixtureRequest], EngineRig]
ENGINE_RIGS: dict[str, RigFactory] = {
    "embedded": lambda directory, campaign, text, _request: EmbeddedRig(directory, campaign, text),
    "redis": redis_rig("redis_server", shards=1),
    "redis-sharded": redis_rig("redis_server", shards=3),
    "redis-cluster": redis_rig("redis_cluster", shards=3),
}


@pytest.fixture(params=sorted(ENGINE_RIGS))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineRig]:
    made = ENGINE_RIGS[request.param](tmp_path, CAMPAIGN, SPEC_TEXT, request)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def engine(rig: EngineRig) -> ClaimEngine:
    return rig.start()


def known_bug(request: pytest.FixtureRequest, engine_name: str, reason: str) -> None:
    """Expect this test to fail for one engine (strictly: it fails the run once fixed)."""
    if request.node.callspec.params["rig"] == engine_name:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"bug: {reason}"))


def exact_remaining(rig: EngineRig) -> bool:
    """A sharded engine's answer carries what is left in the person's home shard only."""
    return getattr(rig, "shards", 1) == 1


def citizen(person_id: str, residency: Residency | None = Residency.PERMANENT) -> Citizen:
    return Citizen(person_id=person_id, residency=residency, in_city=True)


def submit(
    engine: ClaimEngine, person: Citizen | str, type_id: str, key: str, at: datetime = DURING
) -> Future[ClaimAnswer]:
    who = citizen(person) if isinstance(person, str) else person
    return submit_claim(engine, SimulatedClock(at), ClaimRequest(who, type_id, key))


def claim(
    engine: ClaimEngine, person: Citizen | str, type_id: str, key: str, at: datetime = DURING
) -> ClaimAnswer:
    return submit(engine, person, type_id, key, at).result(ANSWER_TIMEOUT_S)


def issued_voucher(answer: ClaimAnswer) -> Voucher:
    assert answer.code is ClaimCode.ISSUED, answer
    assert answer.voucher is not None
    return answer.voucher


# --- issued -------------------------------------------------------------------------------


def test_an_issued_answer_carries_the_persons_voucher_of_that_type(
    rig: EngineRig, engine: ClaimEngine
) -> None:
    answer = claim(engine, "p-1", RETAIL, "k-1", at=DURING)

    voucher = issued_voucher(answer)
    assert voucher.type_id == RETAIL
    assert voucher.round_id == "r1"
    assert voucher.category == "retail"
    assert voucher.person_id == "p-1"
    assert voucher.state is VoucherState.ISSUED
    assert voucher.issued_at == DURING
    assert voucher.valid_from == DURING  # usable straight away
    assert voucher.valid_until == R1_VALID_UNTIL
    if exact_remaining(rig):
        assert answer.remaining == 99
    assert rig.stored_vouchers("p-1") == [voucher]


def test_each_claim_is_answered_exactly_once(engine: ClaimEngine) -> None:
    replies: list[ClaimAnswer | BaseException] = []
    arrived = threading.Semaphore(0)

    def reply(answer: ClaimAnswer | BaseException) -> None:
        replies.append(answer)
        arrived.release()

    requests = [
        ClaimRequest(citizen("p-1"), RETAIL, "k-1"),
        ClaimRequest(citizen("p-1"), RETAIL, "k-1"),
        ClaimRequest(citizen("p-1"), RETAIL, "k-2"),
        ClaimRequest(citizen("p-1"), "r1-nothing", "k-3"),
    ]
    for request in requests:  # one after the other, so each sees the one before
        engine.submit(request, DURING, reply)
        assert arrived.acquire(timeout=ANSWER_TIMEOUT_S), f"no answer to {request}"
    assert not arrived.acquire(timeout=0.1), "a claim was answered twice"

    codes = [a.code if isinstance(a, ClaimAnswer) else a for a in replies]
    assert codes == [
        ClaimCode.ISSUED,
        ClaimCode.ISSUED,
        ClaimCode.LIMIT_REACHED,
        ClaimCode.UNKNOWN_TYPE,
    ]


# --- the claim window ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "code"),
    [
        pytest.param(OPENS_AT - timedelta(microseconds=1), ClaimCode.NOT_OPEN, id="just-before"),
        pytest.param(OPENS_AT - timedelta(days=1), ClaimCode.NOT_OPEN, id="day-before"),
        pytest.param(OPENS_AT, ClaimCode.ISSUED, id="at-opening"),
        pytest.param(CLOSES_AT - timedelta(microseconds=1), ClaimCode.ISSUED, id="last-moment"),
        pytest.param(CLOSES_AT, ClaimCode.CLOSED, id="at-closing"),
        pytest.param(CLOSES_AT + timedelta(days=3), ClaimCode.CLOSED, id="days-after"),
    ],
)
def test_claims_are_issued_only_inside_the_rounds_window(
    rig: EngineRig, engine: ClaimEngine, at: datetime, code: ClaimCode
) -> None:
    answer = claim(engine, "p-1", RETAIL, "k-1", at=at)

    assert answer.code is code
    issued = code is ClaimCode.ISSUED
    assert len(rig.stored_vouchers("p-1")) == (1 if issued else 0)
    assert engine.remaining(RETAIL) == (99 if issued else 100)
    if not issued:
        assert answer.reason, "a refusal says why"


def test_a_later_round_is_not_open_until_its_own_opening(engine: ClaimEngine) -> None:
    r2_opens_at = CAMPAIGN.round("r2").opens_at

    assert claim(engine, "p-1", NEXT_ROUND, "k-1", at=DURING).code is ClaimCode.NOT_OPEN
    assert claim(engine, "p-1", NEXT_ROUND, "k-2", at=r2_opens_at).code is ClaimCode.ISSUED


# --- eligibility ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who",
    [
        pytest.param(Citizen("p-1", None, in_city=True), id="residency-unknown"),
        pytest.param(Citizen("p-1", Residency.VISIT, in_city=True), id="visitor-not-eligible"),
        pytest.param(Citizen("p-1", Residency.PERMANENT, in_city=False), id="outside-city"),
    ],
)
def test_an_ineligible_person_gets_nothing(
    rig: EngineRig, engine: ClaimEngine, who: Citizen
) -> None:
    answer = claim(engine, who, RETAIL, "k-1")

    assert answer.code is ClaimCode.NOT_ELIGIBLE
    assert answer.reason
    assert answer.voucher is None
    assert rig.stored_vouchers("p-1") == []
    assert engine.remaining(RETAIL) == 100


def test_a_refused_person_may_claim_once_eligible(engine: ClaimEngine) -> None:
    outside = Citizen("p-1", Residency.PERMANENT, in_city=False)
    assert claim(engine, outside, RETAIL, "k-1").code is ClaimCode.NOT_ELIGIBLE

    assert claim(engine, citizen("p-1"), RETAIL, "k-2").code is ClaimCode.ISSUED


# --- per-person limits ---------------------------------------------------------------------


def test_the_limit_per_type_stops_the_next_claim_of_that_type(
    rig: EngineRig, engine: ClaimEngine
) -> None:
    assert claim(engine, "p-1", RETAIL, "k-1").code is ClaimCode.ISSUED

    again = claim(engine, "p-1", RETAIL, "k-2")

    assert again.code is ClaimCode.LIMIT_REACHED
    assert again.reason
    assert len(rig.stored_vouchers("p-1")) == 1
    assert engine.remaining(RETAIL) == 99
    # someone else is not held back by p-1's limit
    assert claim(engine, "p-2", RETAIL, "k-1").code is ClaimCode.ISSUED


def test_a_type_allowing_two_per_person_issues_two(rig: EngineRig, engine: ClaimEngine) -> None:
    codes = [claim(engine, "p-1", RETAIL_TWO_EACH, f"k-{n}").code for n in range(3)]

    assert codes == [ClaimCode.ISSUED, ClaimCode.ISSUED, ClaimCode.LIMIT_REACHED]
    assert len(rig.stored_vouchers("p-1")) == 2


def test_the_limit_per_category_counts_every_type_of_the_category(
    rig: EngineRig, engine: ClaimEngine
) -> None:
    assert claim(engine, "p-1", SCARCE, "k-1").code is ClaimCode.ISSUED
    assert claim(engine, "p-1", RETAIL, "k-2").code is ClaimCode.ISSUED

    third_retail = claim(engine, "p-1", RETAIL_TWO_EACH, "k-3")

    assert third_retail.code is ClaimCode.LIMIT_REACHED
    assert "retail" in third_retail.reason
    assert engine.remaining(RETAIL_TWO_EACH) == 100
    # another category is still open to p-1
    assert claim(engine, "p-1", HOME, "k-4").code is ClaimCode.ISSUED
    assert len(rig.stored_vouchers("p-1")) == 3


def test_the_limit_per_round_counts_every_category_of_the_round(
    rig: EngineRig, engine: ClaimEngine
) -> None:
    for n, type_id in enumerate((SCARCE, RETAIL, HOME)):
        assert claim(engine, "p-1", type_id, f"k-{n}").code is ClaimCode.ISSUED

    fourth = claim(engine, "p-1", ONLINE, "k-4")

    assert fourth.code is ClaimCode.LIMIT_REACHED
    assert "r1" in fourth.reason
    assert engine.remaining(ONLINE) == 100
    assert len(rig.stored_vouchers("p-1")) == 3


def test_limits_of_one_round_do_not_hold_back_the_next(engine: ClaimEngine) -> None:
    for n, type_id in enumerate((SCARCE, RETAIL, HOME)):
        assert claim(engine, "p-1", type_id, f"k-{n}").code is ClaimCode.ISSUED
    assert claim(engine, "p-1", ONLINE, "k-3").code is ClaimCode.LIMIT_REACHED

    r2_open = CAMPAIGN.round("r2").opens_at + timedelta(minutes=1)
    assert claim(engine, "p-1", NEXT_ROUND, "k-4", at=r2_open).code is ClaimCode.ISSUED


# --- stock ---------------------------------------------------------------------------------


def test_a_type_sells_out_after_exactly_its_count(rig: EngineRig, engine: ClaimEngine) -> None:
    count = CAMPAIGN.voucher_type(SCARCE)[1].count
    answers = [claim(engine, f"p-{n}", SCARCE, "k-1") for n in range(count + 2)]

    codes = [a.code for a in answers]
    assert codes == [ClaimCode.ISSUED] * count + [ClaimCode.SOLD_OUT] * 2
    if exact_remaining(rig):
        assert [a.remaining for a in answers[:count]] == list(range(count - 1, -1, -1))
    assert engine.remaining(SCARCE) == 0
    stored = [v for n in range(count + 2) for v in rig.stored_vouchers(f"p-{n}")]
    assert sorted(v.id for v in stored) == sorted(issued_voucher(a).id for a in answers[:count])
    assert answers[count].reason


def test_sold_out_costs_the_person_nothing(engine: ClaimEngine) -> None:
    count = CAMPAIGN.voucher_type(SCARCE)[1].count
    for n in range(count):
        claim(engine, f"p-{n}", SCARCE, "k-1")
    assert claim(engine, "late", SCARCE, "k-1").code is ClaimCode.SOLD_OUT

    # a sold-out answer does not count against the category limit of 2
    assert claim(engine, "late", RETAIL, "k-2").code is ClaimCode.ISSUED
    assert claim(engine, "late", RETAIL_TWO_EACH, "k-3").code is ClaimCode.ISSUED


def test_remaining_goes_down_only_with_issued_claims(engine: ClaimEngine) -> None:
    assert engine.remaining(RETAIL) == 100

    claim(engine, "p-1", RETAIL, "k-1")
    claim(engine, "p-2", RETAIL, "k-1")
    assert engine.remaining(RETAIL) == 98

    claim(engine, "p-1", RETAIL, "k-2")  # limit reached
    claim(engine, "p-1", RETAIL, "k-1")  # a retry
    claim(engine, "p-3", RETAIL, "k-1", at=CLOSES_AT)  # closed
    assert engine.remaining(RETAIL) == 98
    assert engine.remaining(HOME) == 100


# --- idempotency ---------------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_same_voucher_once(
    rig: EngineRig, engine: ClaimEngine
) -> None:
    first = claim(engine, "p-1", RETAIL, "k-1")
    retry = claim(engine, "p-1", RETAIL, "k-1", at=DURING + timedelta(seconds=5))

    # issued again rather than limit_reached: the retry is the same claim, not a second one
    assert retry.code is ClaimCode.ISSUED
    assert issued_voucher(retry).id == issued_voucher(first).id
    assert rig.stored_vouchers("p-1") == [issued_voucher(first)]
    assert engine.remaining(RETAIL) == 99


def test_a_retry_while_the_first_is_in_flight_gets_the_same_voucher(
    rig: EngineRig, engine: ClaimEngine
) -> None:
    with rig.stall_commits():
        first = submit(engine, "p-1", RETAIL, "k-1")
        retry = submit(engine, "p-1", RETAIL, "k-1")
        # nothing is answered `issued` before it is durable
        done, _ = wait([first, retry], timeout=0.2)
        assert not done
        conflict = submit(engine, "p-1", HOME, "k-1").result(ANSWER_TIMEOUT_S)

    voucher = issued_voucher(first.result(ANSWER_TIMEOUT_S))
    assert issued_voucher(retry.result(ANSWER_TIMEOUT_S)).id == voucher.id
    assert conflict.code is ClaimCode.IDEMPOTENCY_CONFLICT
    assert rig.stored_vouchers("p-1") == [voucher]
    assert engine.remaining(RETAIL) == 99
    assert engine.remaining(HOME) == 100


def test_the_same_key_for_another_type_is_a_conflict(rig: EngineRig, engine: ClaimEngine) -> None:
    first = claim(engine, "p-1", RETAIL, "k-1")

    other = claim(engine, "p-1", HOME, "k-1")

    assert other.code is ClaimCode.IDEMPOTENCY_CONFLICT
    assert other.voucher is None
    assert other.reason
    assert rig.stored_vouchers("p-1") == [issued_voucher(first)]
    assert engine.remaining(HOME) == 100


def test_keys_belong_to_one_person(rig: EngineRig, engine: ClaimEngine) -> None:
    mine = issued_voucher(claim(engine, "p-1", RETAIL, "k-1"))
    theirs = issued_voucher(claim(engine, "p-2", RETAIL, "k-1"))

    assert theirs.id != mine.id
    assert theirs.person_id == "p-2"
    assert rig.stored_vouchers("p-2") == [theirs]
    assert engine.remaining(RETAIL) == 98


# --- unknown type --------------------------------------------------------------------------


def test_an_unknown_type_is_answered_not_raised(rig: EngineRig, engine: ClaimEngine) -> None:
    answer = claim(engine, "p-1", "r9-retail-1-0", "k-1")

    assert answer.code is ClaimCode.UNKNOWN_TYPE
    assert "r9-retail-1-0" in answer.reason
    assert rig.stored_vouchers("p-1") == []


# --- restart -------------------------------------------------------------------------------


def test_a_restart_rebuilds_stock_limits_and_idempotency(rig: EngineRig) -> None:
    engine = rig.start()
    scarce_count = CAMPAIGN.voucher_type(SCARCE)[1].count
    sold = [issued_voucher(claim(engine, f"p-{n}", SCARCE, "k-s")) for n in range(scarce_count)]
    mine = issued_voucher(claim(engine, "p-0", RETAIL, "k-r"))
    assert claim(engine, "p-9", RETAIL_TWO_EACH, "k-t1").code is ClaimCode.ISSUED
    before = {t: engine.remaining(t) for t in (SCARCE, RETAIL, RETAIL_TWO_EACH, HOME)}

    rig.stop()
    engine = rig.start()

    assert {t: engine.remaining(t) for t in before} == before
    # stock: still sold out
    assert claim(engine, "newcomer", SCARCE, "k-1").code is ClaimCode.SOLD_OUT
    # limits: p-0 holds a scarce and a retail voucher, the category limit of 2
    assert claim(engine, "p-0", RETAIL_TWO_EACH, "k-new").code is ClaimCode.LIMIT_REACHED
    assert claim(engine, "p-0", RETAIL, "k-new2").code is ClaimCode.LIMIT_REACHED
    # p-9 may take the second of a type that allows two, and no more
    assert claim(engine, "p-9", RETAIL_TWO_EACH, "k-t2").code is ClaimCode.ISSUED
    assert claim(engine, "p-9", RETAIL_TWO_EACH, "k-t3").code is ClaimCode.LIMIT_REACHED
    before[RETAIL_TWO_EACH] -= 1
    # idempotency: retries get the vouchers issued before the restart
    assert issued_voucher(claim(engine, "p-0", RETAIL, "k-r")).id == mine.id
    assert issued_voucher(claim(engine, "p-2", SCARCE, "k-s")).id == sold[2].id
    assert claim(engine, "p-0", HOME, "k-r").code is ClaimCode.IDEMPOTENCY_CONFLICT
    assert sorted(v.id for v in rig.stored_vouchers("p-0")) == sorted([sold[0].id, mine.id])
    assert {t: engine.remaining(t) for t in before} == before


# --- failures ------------------------------------------------------------------------------


def test_a_claim_the_store_cannot_record_is_an_error_and_costs_nothing(
    rig: EngineRig, engine: ClaimEngine
) -> None:
    with rig.failing_commits():
        with pytest.raises(XfqError):
            claim(engine, "p-1", RETAIL, "k-1")
        # several in flight together fail together
        others = [submit(engine, f"p-{n}", RETAIL, "k-1") for n in range(2, 7)]
        for future in others:
            with pytest.raises(XfqError):
                future.result(ANSWER_TIMEOUT_S)
        assert engine.remaining(RETAIL) == 100
        assert rig.stored_vouchers("p-1") == []

    # neither the stock nor p-1's limit was used up, and the key is free to retry
    retry = claim(engine, "p-1", RETAIL, "k-1")
    assert retry.code is ClaimCode.ISSUED
    assert rig.stored_vouchers("p-1") == [issued_voucher(retry)]
    assert engine.remaining(RETAIL) == 99


def test_a_stopped_engine_refuses_claims_and_retries_promptly(
    request: pytest.FixtureRequest, rig: EngineRig
) -> None:
    engine = rig.start()
    rig.stop()

    with pytest.raises(XfqError):
        submit(engine, "p-1", RETAIL, "k-1").result(1.0)
    assert engine.remaining(RETAIL) == 100
    with pytest.raises(XfqError):
        submit(engine, "p-1", RETAIL, "k-1").result(1.0)
