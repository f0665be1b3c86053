"""Money after the grab as an operator runs it: expire, rollover, settle, reconcile."""

from __future__ import annotations

import csv
import fcntl
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import spec_text
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.ports import ClaimRequest
from xfq.services.grab import claim
from xfq.spec import parse_campaign

XFQ = [sys.executable, "-m", "xfq"]
TZ = ZoneInfo("Asia/Shanghai")
WEEK = [f"2022-03-{day:02d}" for day in range(5, 12)]  # round 6's validity week
WEEKLY = (
    spec_text.campaign("weekly", "Week by week", ("retail",)).replace(
        "enabled = false\nsources = []", 'enabled = true\nsources = ["unclaimed", "expired"]'
    )
    + spec_text.round_("r1", 1, "2022-02-26T10:00:00", "2022-03-05T00:00:00")
    + spec_text.voucher_type("r1-retail-180-40", 180, 40, 5)
    + spec_text.round_("r2", 2, "2022-03-05T10:00:00", "2022-03-12T00:00:00", name="Round two")
    + spec_text.voucher_type("r2-retail-180-40", 180, 40, 2)
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*XFQ, *args], check=False, capture_output=True, text=True, env=env, timeout=240
    )


def weekly_ledger(path: Path, claimed: int) -> None:
    """A ledger of the two-round campaign where `claimed` people grabbed round 1 vouchers."""
    campaign = parse_campaign(WEEKLY, "weekly")
    clock = SimulatedClock(datetime(2022, 2, 26, 10, tzinfo=TZ))
    ledger = SqlLedger(f"sqlite:///{path}")
    ledger.install_campaign(campaign, WEEKLY, clock.now())
    engine = EmbeddedClaimEngine(campaign, ledger, RandomIds(), None)
    for i in range(claimed):
        citizen = Citizen(f"p{i}", Residency.PERMANENT, in_city=True)
        answer = claim(engine, clock, ClaimRequest(citizen, "r1-retail-180-40", f"k{i}"))
        assert answer.code is ClaimCode.ISSUED
    engine.close()
    ledger.close()


def test_expire_expires_at_the_end_of_validity_in_taiyuan_and_only_once(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    weekly_ledger(ledger, claimed=3)
    before = run("expire", str(ledger), "--at", "2022-03-04T23:59:59")
    assert before.returncode == 0, before.stderr
    assert "expired 0 voucher(s) whose validity ended by 2022-03-04T23:59:59+08:00" in before.stdout
    done = run("expire", str(ledger), "--at", "2022-03-05T00:00:00")
    assert "expired 3 voucher(s)" in done.stdout
    again = run("expire", str(ledger), "--at", "2022-03-06T00:00:00")
    assert "expired 0 voucher(s)" in again.stdout
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT count(*) FROM vouchers WHERE state='expired'").fetchone() == (3,)


def test_rollover_moves_round_1_leftovers_into_round_2_once(tmp_path: Path) -> None:
    spec = tmp_path / "weekly.toml"
    spec.write_text(WEEKLY, encoding="utf-8")
    checked = run("spec", "check", str(spec))
    assert "r1-retail-180-40 满180减40 -> r2-retail-180-40" in checked.stdout
    ledger = tmp_path / "l.db"
    weekly_ledger(ledger, claimed=3)
    with Path(f"{ledger}.engine.lock").open("a") as held:  # as a running `xfq serve` holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        served = run("rollover", str(ledger), "r1", "--at", "2022-03-05T00:00:00")
    assert served.returncode == 2 and "a server is running on" in served.stderr
    early = run("rollover", str(ledger), "r1", "--at", "2022-03-04T12:00:00")
    assert early.returncode == 2 and "round r1 is not finished" in early.stderr
    assert "Traceback" not in early.stderr
    done = run("rollover", str(ledger), "r1", "--at", "2022-03-05T00:00:00")
    assert done.returncode == 0, done.stderr
    # 2 never claimed + 3 claimed and expired unused = 5 more of round 2's 满180减40
    assert "round r2: budget 80.00 yuan, effective budget 280.00 yuan with 200.00 rolled in" in (
        done.stdout
    )
    again = run("rollover", str(ledger), "r1", "--at", "2022-03-06T00:00:00")
    assert "(done before)" in again.stdout and "effective budget 280.00" in again.stdout
    checks = run("reconcile", str(ledger))
    assert checks.returncode == 0, checks.stdout
    assert "(5 rolled over)" in checks.stdout


def _day_totals(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as f:
        return {r["kind"]: r["owed_yuan"] for r in csv.DictReader(f) if r["kind"].startswith("day")}


def test_a_week_of_the_reference_round_settles_to_the_discounts_in_the_ledger(
    tmp_path: Path,
) -> None:
    demo = run(
        "demo", "--direct", "--population", "3000", "--merchants", "10", "--workdir", str(tmp_path)
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    ledger, out = tmp_path / "ledger.db", tmp_path / "settlement"
    owed_fen = 0
    for day in WEEK:
        done = run("settle", str(ledger), day, "--out", str(out), "--close")
        assert done.returncode == 0, done.stdout + done.stderr
        totals = _day_totals(out / f"settlement-{day}.csv")
        assert totals["day total owed"] == totals["day total payable"]  # nobody suspended
        owed_fen += int(totals["day total owed"].replace(".", ""))
    with sqlite3.connect(ledger) as db:
        (discounts_fen,) = db.execute(
            "SELECT sum(discount_fen) FROM redemptions WHERE state = 'posted'"
        ).fetchone()
        closed = db.execute("SELECT count(*) FROM settlement_days").fetchone()[0]
    assert owed_fen == discounts_fen > 0 and closed == len(WEEK)

    def files(folder: Path) -> list[bytes]:
        return [(folder / f"settlement-{WEEK[2]}.{ext}").read_bytes() for ext in ("csv", "xlsx")]

    first = files(out)
    rerun = run("settle", str(ledger), WEEK[2], "--out", str(tmp_path / "again"))
    assert "was closed before" not in rerun.stdout and "closed at" in rerun.stdout
    second = [
        (tmp_path / "again" / f"settlement-{WEEK[2]}.{ext}").read_bytes() for ext in ("csv", "xlsx")
    ]
    assert first == second  # byte for byte
    checks = run("reconcile", str(ledger))
    assert checks.returncode == 0, checks.stdout
    assert "settlement over every day" in checks.stdout


def test_settle_explains_bad_input_without_a_traceback(tmp_path: Path) -> None:
    missing = run("settle", str(tmp_path / "nope.db"), "2022-03-07")
    assert missing.returncode == 2 and "no ledger file" in missing.stderr
    ledger = tmp_path / "l.db"
    weekly_ledger(ledger, claimed=0)
    bad = run("settle", str(ledger), "2022-3-7x")
    assert bad.returncode == 2 and "DAY must be a date like 2022-03-07" in bad.stderr
    early = run("settle", str(ledger), "2022-03-07", "--close", "--at", "2022-03-07T23:00:00")
    assert early.returncode == 2 and "2022-03-07 has not ended yet" in early.stderr
    assert "Traceback" not in bad.stderr + early.stderr
