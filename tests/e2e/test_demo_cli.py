"""The demo and reconcile commands as an operator runs them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from servers.postgres_fixtures import LedgerDb

XFQ = [sys.executable, "-m", "xfq"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*XFQ, *args], check=False, capture_output=True, text=True, env=env, timeout=240
    )


def test_demo_runs_the_reference_round_and_every_invariant_holds(tmp_path: Path) -> None:
    done = run(
        "demo", "--direct", "--population", "4000", "--merchants", "20", "--workdir", str(tmp_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "第六轮" in done.stdout
    assert "NO" not in done.stdout.split("Invariants")[1]
    ledger = tmp_path / "ledger.db"
    with sqlite3.connect(ledger) as db:
        issued = db.execute("SELECT count(*) FROM vouchers").fetchone()[0]
        expired = db.execute("SELECT count(*) FROM vouchers WHERE state='expired'").fetchone()[0]
        redeemed = db.execute("SELECT count(*) FROM vouchers WHERE state='redeemed'").fetchone()[0]
    answers = (tmp_path / "issued-answers.txt").read_text().split()
    assert issued == len(answers) > 0
    assert redeemed > 0 and expired > 0  # the week used some, the end of 3-11 expired the rest
    assert str(ledger) in done.stdout


def test_reconcile_passes_on_the_demo_ledger_and_catches_tampering(tmp_path: Path) -> None:
    made = run(
        "demo", "--direct", "--population", "2000", "--merchants", "10", "--workdir", str(tmp_path)
    )
    assert made.returncode == 0, made.stdout + made.stderr
    ledger = tmp_path / "ledger.db"
    answers = tmp_path / "issued-answers.txt"
    clean = run("reconcile", str(ledger), "--answers", str(answers))
    assert clean.returncode == 0, clean.stdout + clean.stderr

    with sqlite3.connect(ledger) as db:  # a voucher silently deleted after its answer
        victim = answers.read_text().split()[0]
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("DELETE FROM voucher_events WHERE voucher_id = ?", (victim,))
        db.execute("DELETE FROM redemptions WHERE voucher_id = ?", (victim,))
        db.execute("DELETE FROM vouchers WHERE id = ?", (victim,))
        # and a redeemed voucher whose redemption vanished: the ledger no longer balances
        row = db.execute("SELECT voucher_id FROM redemptions WHERE state='posted'").fetchone()
        db.execute("DELETE FROM redemptions WHERE voucher_id = ?", (row[0],))
    broken = run("reconcile", str(ledger), "--answers", str(answers))
    assert broken.returncode == 1
    assert "1 missing from the ledger" in broken.stdout
    assert "NO" in broken.stdout


def test_demo_over_http_drives_a_real_server_and_stops_it_with_exit(tmp_path: Path) -> None:
    done = run(
        "demo", "--exit", "--population", "1500", "--merchants", "8", "--workdir", str(tmp_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "over HTTP" in done.stdout and "http://127.0.0.1:" in done.stdout
    assert "NO" not in done.stdout.split("Invariants")[1]
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        merchants = db.execute("SELECT count(*) FROM merchant_keys").fetchone()[0]
        redeemed = db.execute("SELECT count(*) FROM redemptions").fetchone()[0]
    assert merchants == 8 * 4  # enrolled and approved through the operators' API
    assert redeemed > 0  # tills redeemed through the merchants' API


def test_reconcile_of_a_missing_file_says_so_without_a_traceback(tmp_path: Path) -> None:
    done = run("reconcile", str(tmp_path / "nope.db"))
    assert done.returncode == 2
    assert "no ledger file" in done.stderr
    assert "Traceback" not in done.stderr


def test_spec_check_of_a_broken_file_names_the_line(tmp_path: Path) -> None:
    spec = tmp_path / "c.toml"
    text = (Path(__file__).parents[2] / "examples/taiyuan-2022/campaign.toml").read_text()
    spec.write_text(text.replace("count = 23250", "count = -5", 1))
    done = run("spec", "check", str(spec))
    line = 1 + text[: text.index("count = 23250")].count("\n")
    assert done.returncode == 2
    assert f"{spec}:{line}" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_and_reconcile_on_a_postgresql_ledger(tmp_path: Path, postgres_url: str) -> None:
    made = run(
        "demo", "--direct", "--population", "1500", "--merchants", "10",
        "--workdir", str(tmp_path), "--postgres", postgres_url,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert "NO" not in made.stdout.split("Invariants")[1]
    answers = tmp_path / "issued-answers.txt"
    clean = run("reconcile", "--postgres", postgres_url, "--answers", str(answers))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # The money and audit commands take the same URL.
    settled = run("settle", postgres_url, "2022-03-07", "--out", str(tmp_path / "settle"))
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert (tmp_path / "settle" / "settlement-2022-03-07.csv").read_text().count("\n") > 2
    verified = run("audit", "verify", postgres_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    victim = answers.read_text().split()[0]
    db = LedgerDb("postgresql", postgres_url)
    db.execute(
        f"DELETE FROM voucher_events WHERE voucher_id = '{victim}';"
        f"DELETE FROM redemptions WHERE voucher_id = '{victim}';"
        f"DELETE FROM vouchers WHERE id = '{victim}'"
    )
    broken = run("reconcile", postgres_url, "--answers", str(answers))  # the URL as argument
    assert broken.returncode == 1
    assert "1 missing from the ledger" in broken.stdout

    again = run("demo", "--direct", "--workdir", str(tmp_path), "--postgres", postgres_url)
    assert again.returncode == 2 and "needs an empty ledger" in again.stderr
    assert "Traceback" not in again.stderr
