"""The grab under contention: many threads and several processes against one small stock.

The embedded engine is the only decider on its ledger; these tests check from the ledger itself
(not from the engine's counters) that contention never oversells a type nor lets one person
past a limit, and that a second engine on the same ledger is refused.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Client
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Protocol

import pytest

import spec_text
from servers.postgres_fixtures import LedgerDb
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.errors import StorageUnavailable
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.services.grab import submit_claim
from xfq.spec import parse_campaign

ANSWER_TIMEOUT_S = 30.0
CHILD_TIMEOUT_S = 60.0

SPEC_TEXT = (
    spec_text.campaign("grab-concurrency", "Grab under contention")
    + spec_text.round_()
    + spec_text.voucher_type("r1-retail-180-40", 180, 40, 50)
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 1000, per_person=3)
    + spec_text.voucher_type("r1-retail-100-20", 100, 20, 1000)
    + spec_text.voucher_type("r1-home-500-80", 500, 80, 40)
)

CAMPAIGN = parse_campaign(SPEC_TEXT, "grab-concurrency.toml")
R1 = CAMPAIGN.round("r1")
DURING = R1.opens_at + timedelta(seconds=1)
SCARCE = "r1-retail-180-40"  # 50
RETAIL_THREE_EACH = "r1-retail-30-6"  # per_person 3, but the category allows 2
RETAIL = "r1-retail-100-20"
HOME = "r1-home-500-80"  # 40


@dataclass
class Grab:
    """One embedded engine on a fresh ledger in `directory`."""

    directory: Path
    ledger: SqlLedger
    engine: EmbeddedClaimEngine

    @property
    def url(self) -> str:
        return self.ledger.url

    @property
    def lock_path(self) -> Path:
        return self.directory / "ledger.db.lock"


def open_grab(directory: Path, url: str | None = None) -> Grab:
    ledger = SqlLedger(url or f"sqlite:///{directory / 'ledger.db'}")
    ledger.install_campaign(CAMPAIGN, SPEC_TEXT, R1.opens_at)
    engine = EmbeddedClaimEngine(CAMPAIGN, ledger, RandomIds(), directory / "ledger.db.lock")
    return Grab(directory, ledger, engine)


@pytest.fixture
def grab(tmp_path: Path, ledger_db: LedgerDb) -> Iterator[Grab]:
    """On either ledger, SQLite or PostgreSQL."""
    opened = open_grab(tmp_path, ledger_db.url)
    try:
        yield opened
    finally:
        opened.engine.close()
        opened.ledger.close()


@pytest.fixture
def sqlite_grab(tmp_path: Path) -> Iterator[Grab]:
    opened = open_grab(tmp_path)
    try:
        yield opened
    finally:
        opened.engine.close()
        opened.ledger.close()


def claim(grab: Grab, person_id: str, type_id: str, key: str) -> ClaimAnswer:
    request = ClaimRequest(Citizen(person_id, Residency.PERMANENT, True), type_id, key)
    future = submit_claim(grab.engine, SimulatedClock(DURING), request)
    return future.result(ANSWER_TIMEOUT_S)


def stored(url: str) -> list[tuple[str, str, str, str]]:
    """(voucher id, type id, person id, claim key) of every voucher the ledger holds."""
    rows = LedgerDb("", url).rows("SELECT id, type_id, person_id, claim_key FROM vouchers")
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def held_by_type(url: str) -> Counter[str]:
    return Counter(type_id for _voucher_id, type_id, _person, _key in stored(url))


def limit_breaches(url: str) -> list[str]:
    """Every way the ledger shows a person holding more than the campaign allows."""
    rows = stored(url)
    per_type = Counter((person, type_id) for _v, type_id, person, _k in rows)
    per_category = Counter(
        (person, CAMPAIGN.voucher_type(type_id)[1].category) for _v, type_id, person, _k in rows
    )
    per_round = Counter(person for _v, _t, person, _k in rows)
    assert R1.limits.per_category is not None and R1.limits.per_round is not None
    return (
        [
            f"{person} holds {n} of {type_id}"
            for (person, type_id), n in per_type.items()
            if n > CAMPAIGN.voucher_type(type_id)[1].per_person
        ]
        + [
            f"{person} holds {n} of category {category}"
            for (person, category), n in per_category.items()
            if n > R1.limits.per_category
        ]
        + [
            f"{person} holds {n} of round r1"
            for person, n in per_round.items()
            if n > R1.limits.per_round
        ]
    )


def oversold(url: str) -> dict[str, int]:
    """Types the ledger holds more vouchers of than their count: type id -> vouchers held."""
    held = held_by_type(url)
    return {t: n for t, n in held.items() if n > CAMPAIGN.voucher_type(t)[1].count}


def run_together(workers: int, job: Callable[[int], list[ClaimAnswer]]) -> list[ClaimAnswer]:
    """Run `job(worker)` on `workers` threads released at the same moment."""
    start = threading.Barrier(workers, timeout=ANSWER_TIMEOUT_S)

    def worker(n: int) -> list[ClaimAnswer]:
        start.wait()
        return job(n)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(worker, range(workers), timeout=ANSWER_TIMEOUT_S * 2))
    return [answer for answers in results for answer in answers]


# --- (a) many threads, one small stock -----------------------------------------------------


def test_many_threads_never_oversell_a_small_stock(grab: Grab) -> None:
    threads, people = 16, 500
    count = CAMPAIGN.voucher_type(SCARCE)[1].count

    def job(worker: int) -> list[ClaimAnswer]:
        return [claim(grab, f"p-{n}", SCARCE, f"k-{n}") for n in range(worker, people, threads)]

    answers = run_together(threads, job)

    assert len(answers) == people
    issued = [a for a in answers if a.code is ClaimCode.ISSUED]
    assert len(issued) == count
    assert {a.code for a in answers} == {ClaimCode.ISSUED, ClaimCode.SOLD_OUT}
    assert grab.engine.remaining(SCARCE) == 0
    in_ledger = {voucher_id: person for voucher_id, _t, person, _k in stored(grab.url)}
    assert len(in_ledger) == count
    for answer in issued:
        assert answer.voucher is not None
        assert in_ledger.get(answer.voucher.id) == answer.voucher.person_id
    assert oversold(grab.url) == {}


def test_many_threads_over_two_types_sell_out_each_exactly(grab: Grab) -> None:
    threads, people = 16, 300
    counts = {t: CAMPAIGN.voucher_type(t)[1].count for t in (SCARCE, HOME)}

    def job(worker: int) -> list[ClaimAnswer]:
        return [
            claim(grab, f"p-{n}", type_id, f"k-{n}-{type_id}")
            for n in range(worker, people, threads)
            for type_id in (SCARCE, HOME)
        ]

    answers = run_together(threads, job)

    assert Counter(a.voucher.type_id for a in answers if a.voucher is not None) == counts
    assert held_by_type(grab.url) == counts


# --- (b) one person, many requests at once -------------------------------------------------


@pytest.mark.parametrize(
    ("types", "allowed"),
    [
        pytest.param((RETAIL_THREE_EACH,), 2, id="type-limit-3-capped-by-category-2"),
        pytest.param((RETAIL,), 1, id="type-limit-1"),
        pytest.param((SCARCE, RETAIL, RETAIL_THREE_EACH), 2, id="category-limit-2"),
        pytest.param((SCARCE, RETAIL, HOME), 3, id="round-limit-3"),
    ],
)
def test_one_person_flooding_claims_gets_no_more_than_the_limit(
    grab: Grab, types: tuple[str, ...], allowed: int
) -> None:
    threads, claims = 20, 200

    def job(worker: int) -> list[ClaimAnswer]:
        return [
            claim(grab, "greedy", types[n % len(types)], f"k-{n}")
            for n in range(worker, claims, threads)
        ]

    answers = run_together(threads, job)

    codes = [a.code for a in answers]
    assert len(codes) == claims
    assert codes.count(ClaimCode.ISSUED) == allowed
    assert codes.count(ClaimCode.LIMIT_REACHED) == claims - allowed
    mine = [row for row in stored(grab.url) if row[2] == "greedy"]
    assert len(mine) == allowed
    assert limit_breaches(grab.url) == []


# --- (c) several client processes against one engine ---------------------------------------


class ClaimDesk:
    """The engine's claim function as client processes reach it through a manager."""

    def __init__(self, grab: Grab) -> None:
        self._grab = grab
        self._lock = threading.Lock()
        self.answers: list[tuple[str, str, str, ClaimAnswer]] = []

    def claim(self, person_id: str, type_id: str, key: str) -> dict[str, str | None]:
        answer = claim(self._grab, person_id, type_id, key)
        with self._lock:
            self.answers.append((person_id, type_id, key, answer))
        voucher_id = None if answer.voucher is None else answer.voucher.id
        return {"code": answer.code.value, "voucher_id": voucher_id, "reason": answer.reason}


class DeskProxy(Protocol):
    def claim(self, person_id: str, type_id: str, key: str) -> dict[str, str | None]: ...


class DeskClient(BaseManager):
    desk: Callable[[], DeskProxy]  # made by `register` below


DeskClient.register("desk")
AUTHKEY = b"xfq-grab-concurrency-test"
CLIENT_TYPES = (SCARCE, RETAIL, RETAIL_THREE_EACH, HOME)


def client_process(address: tuple[str, int], client: int, claims: int, people: int) -> None:
    """A wallet app's process: claims for random people, each claim sent twice (a retry)."""
    manager = DeskClient(address=address, authkey=AUTHKEY)
    manager.connect()
    desk = manager.desk()
    rng = random.Random(client)
    for n in range(claims):
        person = f"p-{rng.randrange(people)}"
        type_id = rng.choice(CLIENT_TYPES)
        key = f"c{client}-{n}"
        first = desk.claim(person, type_id, key)
        retry = desk.claim(person, type_id, key)
        if first["code"] == "issued" and retry != first:
            raise SystemExit(f"retry of {key} answered {retry}, first {first}")


@contextmanager
def serving(desk: ClaimDesk) -> Iterator[tuple[str, int]]:
    """Serve `desk` to other processes from threads of this one; yields the address."""

    class DeskHost(BaseManager):
        pass

    DeskHost.register("desk", callable=lambda: desk)
    server = DeskHost(address=("127.0.0.1", 0), authkey=AUTHKEY).get_server()
    # Not `serve_forever`: it ends with sys.exit and resets sys.stdout, meant for a process of
    # its own. This loop hands each connection to the server's handler until told to stop;
    # `stop_event` is what the handlers look at, which `serve_forever` would have made.
    listener = server.listener  # type: ignore[attr-defined]
    server.stop_event = stop = threading.Event()  # type: ignore[attr-defined]
    address = server.address
    assert isinstance(address, tuple)

    def accept() -> None:
        while True:
            connection = listener.accept()
            if stop.is_set():
                connection.close()
                return
            threading.Thread(target=server.handle_request, args=(connection,), daemon=True).start()

    accepting = threading.Thread(target=accept, name="desk-accepter", daemon=True)
    accepting.start()
    try:
        yield address
    finally:
        stop.set()
        Client(address).close()  # wakes the accepter
        accepting.join(ANSWER_TIMEOUT_S)
        listener.close()


def test_client_processes_claiming_at_once_never_oversell_nor_breach_limits(
    grab: Grab,
) -> None:
    desk = ClaimDesk(grab)
    clients, claims, people = 3, 150, 80
    spawn = multiprocessing.get_context("spawn")
    with serving(desk) as address:
        processes = [
            spawn.Process(target=client_process, args=(address, c, claims, people))
            for c in range(clients)
        ]
        try:
            for p in processes:
                p.start()
            for p in processes:
                p.join(CHILD_TIMEOUT_S)
        finally:
            for p in processes:
                if p.is_alive():
                    p.kill()
                    p.join()

    assert [p.exitcode for p in processes] == [0] * clients
    assert len(desk.answers) == clients * claims * 2
    assert oversold(grab.url) == {}
    assert limit_breaches(grab.url) == []
    # every issued answer is a voucher in the ledger, with the person and key it was issued for
    in_ledger = {row[0]: row for row in stored(grab.url)}
    for person, type_id, key, answer in desk.answers:
        if answer.voucher is not None:
            assert in_ledger[answer.voucher.id][1:] == (type_id, person, key)
    assert len(in_ledger) == len({a.voucher.id for *_, a in desk.answers if a.voucher})
    # the ledger and the engine agree on what is left; latecomers then sell each scarce type
    # out exactly (whether the 80 people did depends on the order their limits bound in)
    held = held_by_type(grab.url)
    for type_id in (SCARCE, HOME):
        count = CAMPAIGN.voucher_type(type_id)[1].count
        assert grab.engine.remaining(type_id) == count - held[type_id]
        for n in range(grab.engine.remaining(type_id)):
            assert claim(grab, f"late-{n}", type_id, "k").code is ClaimCode.ISSUED
        assert claim(grab, "last", type_id, "k").code is ClaimCode.SOLD_OUT
        assert held_by_type(grab.url)[type_id] == count


# --- (d) one decider per ledger ------------------------------------------------------------

OPEN_SECOND_ENGINE = """
import sys
from pathlib import Path
from xfq.adapters.embedded.engine import EmbeddedClaimEngine, EngineLocked
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.spec import parse_campaign

directory = Path(sys.argv[1])
campaign = parse_campaign((directory / "campaign.toml").read_text(), "campaign.toml")
ledger = SqlLedger(f"sqlite:///{directory / 'ledger.db'}")
try:
    engine = EmbeddedClaimEngine(campaign, ledger, RandomIds(), directory / "ledger.db.lock")
except EngineLocked as error:
    ledger.close()
    print(f"{error.code}: {error}")
    sys.exit(3)
engine.close()
ledger.close()
print("opened")
"""


def open_engine_elsewhere(directory: Path) -> subprocess.CompletedProcess[str]:
    (directory / "campaign.toml").write_text(SPEC_TEXT)
    return subprocess.run(
        [sys.executable, "-c", OPEN_SECOND_ENGINE, str(directory)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )


def test_a_second_process_cannot_run_an_engine_on_the_same_ledger(sqlite_grab: Grab) -> None:
    grab = sqlite_grab
    first = claim(grab, "p-1", SCARCE, "k-1")

    refused = open_engine_elsewhere(grab.directory)

    assert refused.returncode == 3, refused.stderr
    message = refused.stdout
    assert message.startswith("engine_locked: ")
    assert f"pid {os.getpid()}" in message  # names the process that holds it
    assert str(grab.lock_path) in message
    assert "only one process" in message
    # the engine that holds the ledger goes on deciding, and alone
    assert claim(grab, "p-2", SCARCE, "k-1").code is ClaimCode.ISSUED
    assert grab.engine.remaining(SCARCE) == CAMPAIGN.voucher_type(SCARCE)[1].count - 2
    assert len(stored(grab.url)) == 2
    assert first.code is ClaimCode.ISSUED


def test_the_ledger_is_free_for_another_process_once_the_engine_closes(tmp_path: Path) -> None:
    grab = open_grab(tmp_path)
    grab.engine.close()
    grab.ledger.close()

    reopened = open_engine_elsewhere(tmp_path)

    assert reopened.returncode == 0, reopened.stdout + reopened.stderr
    assert reopened.stdout.strip() == "opened"


def test_a_closed_engine_decides_no_more_so_its_successor_decides_alone(tmp_path: Path) -> None:
    count = CAMPAIGN.voucher_type(HOME)[1].count
    old = open_grab(tmp_path)
    for n in range(count - 1):
        assert claim(old, f"early-{n}", HOME, "k").code is ClaimCode.ISSUED
    old.engine.close()  # e.g. a shutdown hook, while requests are still being served
    new = open_grab(tmp_path)  # the lock is free: a restarted process takes over
    try:
        with pytest.raises(StorageUnavailable):  # refused: this engine was closed
            claim(old, "late-1", HOME, "k")
        last = claim(new, "late-2", HOME, "k")
    finally:
        new.engine.close()
        new.ledger.close()
        old.ledger.close()

    assert last.code is ClaimCode.ISSUED
    assert oversold(f"sqlite:///{tmp_path / 'ledger.db'}") == {}
