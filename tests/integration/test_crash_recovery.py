"""kill -9 in the middle of a grab: every claim answered `issued` survives, nothing is oversold.

A child process runs the embedded engine and claims as fast as a small pace allows, logging each
`issued` answer (fsynced) as soon as it arrives, the way a wallet app would show it to a person.
The test kills the child with SIGKILL while claims are in flight, restarts the engine on the same
ledger and checks the log against the ledger; then it does so again, and finally sells out.
Both ledgers: a SQLite file and a PostgreSQL database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import spec_text
from servers.postgres_fixtures import LedgerDb
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.services.grab import submit_claim
from xfq.spec import parse_campaign

KILLS = 4
ANSWERS_BEFORE_KILL = 25  # new `issued` lines in the log before each kill
WAIT_FOR_ANSWERS_S = 20.0
ANSWER_TIMEOUT_S = 10.0
PEOPLE = 400

SPEC_TEXT = (
    spec_text.campaign("crash-recovery", "Crash recovery")
    + spec_text.round_()
    + spec_text.voucher_type("r1-retail-180-40", 180, 40, 150)
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 150)
    + spec_text.voucher_type("r1-home-500-80", 500, 80, 100)
)

CAMPAIGN = parse_campaign(SPEC_TEXT, "crash-recovery.toml")
R1 = CAMPAIGN.round("r1")
DURING = R1.opens_at + timedelta(seconds=1)
COUNTS = {t.id: t.count for t in R1.types}

# The claimer: a wallet backend that shows a person their voucher as soon as it is answered.
CLAIMER = """
import os, random, sys, threading, time
from datetime import timedelta
from pathlib import Path
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.eligibility import Citizen, Residency
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.spec import load_campaign

directory, run, people, url = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
campaign = load_campaign(directory / "campaign.toml")
rnd = campaign.rounds[0]
now = rnd.opens_at + timedelta(seconds=1)
types = [t.id for t in rnd.types]
ledger = SqlLedger(url)
engine = EmbeddedClaimEngine(campaign, ledger, RandomIds(), directory / "ledger.db.lock")
log = open(directory / "issued.log", "a", encoding="utf-8")
log_lock = threading.Lock()
in_flight = threading.BoundedSemaphore(32)


def answered(key):
    def reply(answer):
        try:
            if isinstance(answer, ClaimAnswer) and answer.voucher is not None:
                v = answer.voucher
                with log_lock:
                    log.write(f"{v.id} {v.person_id} {v.type_id} {key}\\n")
                    log.flush()
                    os.fsync(log.fileno())
        finally:
            in_flight.release()
    return reply


rng = random.Random(run)
n = 0
while any(engine.remaining(t) > 0 for t in types):
    in_flight.acquire()
    person = f"p-{rng.randrange(people)}"
    key = f"run{run}-{n}"
    request = ClaimRequest(Citizen(person, Residency.PERMANENT, True), rng.choice(types), key)
    engine.submit(request, now, answered(key))
    n += 1
    time.sleep(0.001)
print("sold out before the kill", flush=True)
"""


@dataclass(frozen=True)
class Logged:
    """One `issued` answer as the claimer showed it."""

    voucher_id: str
    person_id: str
    type_id: str
    key: str


def read_log(path: Path) -> list[Logged]:
    if not path.exists():
        return []
    # A line cut short by the kill was never fully shown; it has no newline yet.
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    return [Logged(*line.split(" ")) for line in lines]


def ledger_rows(db: LedgerDb) -> dict[str, tuple[str, str, str]]:
    """voucher id -> (person id, type id, claim key) of every voucher in the ledger."""
    rows = db.rows("SELECT id, person_id, type_id, claim_key FROM vouchers")
    return {str(v): (str(p), str(t), str(k)) for v, p, t, k in rows}


def open_engine(directory: Path, db: LedgerDb) -> tuple[SqlLedger, EmbeddedClaimEngine]:
    ledger = SqlLedger(db.url)
    engine = EmbeddedClaimEngine(CAMPAIGN, ledger, RandomIds(), directory / "ledger.db.lock")
    return ledger, engine


def claim(engine: EmbeddedClaimEngine, person_id: str, type_id: str, key: str) -> ClaimAnswer:
    request = ClaimRequest(Citizen(person_id, Residency.PERMANENT, True), type_id, key)
    return submit_claim(engine, SimulatedClock(DURING), request).result(ANSWER_TIMEOUT_S)


def run_claimer_and_kill(directory: Path, db: LedgerDb, run: int) -> None:
    """Start the claimer, let it show some more answers, then SIGKILL it mid-grab."""
    log = directory / "issued.log"
    target = len(read_log(log)) + ANSWERS_BEFORE_KILL
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(directory), str(run), str(PEOPLE), db.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + WAIT_FOR_ANSWERS_S
        while len(read_log(log)) < target and child.poll() is None:
            assert time.monotonic() < deadline, "the claimer showed too few answers in time"
            time.sleep(0.005)
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGKILL)
        _out, _err = child.communicate(timeout=WAIT_FOR_ANSWERS_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGKILL


def check_after_restart(directory: Path, db: LedgerDb) -> None:
    """Every answer shown before the kill is in the ledger and answers a retry the same way."""
    logged = read_log(directory / "issued.log")
    ledger, engine = open_engine(directory, db)
    try:
        rows = ledger_rows(db)
        missing = [entry for entry in logged if entry.voucher_id not in rows]
        assert missing == [], f"answered `issued` but not in the ledger after kill -9: {missing}"
        for entry in logged:
            assert rows[entry.voucher_id] == (entry.person_id, entry.type_id, entry.key)
        held = Counter(type_id for _person, type_id, _key in rows.values())
        assert {t: engine.remaining(t) for t in COUNTS} == {t: COUNTS[t] - held[t] for t in COUNTS}
        for entry in logged[-10:]:
            retry = claim(engine, entry.person_id, entry.type_id, entry.key)
            assert retry.code is ClaimCode.ISSUED
            assert retry.voucher is not None
            assert retry.voucher.id == entry.voucher_id
        assert ledger_rows(db) == rows  # the retries changed nothing
    finally:
        engine.close()
        ledger.close()


def sell_out(directory: Path, db: LedgerDb) -> None:
    ledger, engine = open_engine(directory, db)
    try:
        for n in range(PEOPLE):
            for type_id in COUNTS:
                if engine.remaining(type_id) > 0:
                    claim(engine, f"p-{n}", type_id, f"final-{n}-{type_id}")
        assert {t: engine.remaining(t) for t in COUNTS} == dict.fromkeys(COUNTS, 0)
        assert claim(engine, "latecomer", next(iter(COUNTS)), "k").code is ClaimCode.SOLD_OUT
    finally:
        engine.close()
        ledger.close()


def limit_breaches(rows: dict[str, tuple[str, str, str]]) -> list[str]:
    per_type = Counter((person, type_id) for person, type_id, _key in rows.values())
    per_category = Counter(
        (person, CAMPAIGN.voucher_type(type_id)[1].category)
        for person, type_id, _key in rows.values()
    )
    per_round = Counter(person for person, _type_id, _key in rows.values())
    assert R1.limits.per_category is not None and R1.limits.per_round is not None
    return (
        [f"{p} holds {n} of {t}" for (p, t), n in per_type.items() if n > 1]
        + [f"{p} holds {n} {c}" for (p, c), n in per_category.items() if n > 2]
        + [f"{p} holds {n} in r1" for p, n in per_round.items() if n > 3]
    )


def test_answers_survive_repeated_kill_9_and_the_grab_still_sells_out_exactly(
    tmp_path: Path, ledger_db: LedgerDb
) -> None:
    (tmp_path / "campaign.toml").write_text(SPEC_TEXT, encoding="utf-8")
    ledger = SqlLedger(ledger_db.url)
    ledger.install_campaign(CAMPAIGN, SPEC_TEXT, R1.opens_at)
    ledger.close()

    for run in range(KILLS):
        run_claimer_and_kill(tmp_path, ledger_db, run)
        check_after_restart(tmp_path, ledger_db)
    sell_out(tmp_path, ledger_db)

    rows = ledger_rows(ledger_db)
    assert Counter(type_id for _person, type_id, _key in rows.values()) == COUNTS
    assert limit_breaches(rows) == []
    logged = read_log(tmp_path / "issued.log")
    assert len(logged) >= KILLS * ANSWERS_BEFORE_KILL
    assert {entry.voucher_id for entry in logged} <= set(rows)
