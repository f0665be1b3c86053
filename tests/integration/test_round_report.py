"""The round report over a real SQLite ledger made by the demo: its figures are the ledger's.

The expected figures are computed here with plain SQL through sqlite3 and with reconcile's own
figures, not with the report's DuckDB queries. The XLSX is read back with openpyxl.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook
from rich.console import Console

from xfq.adapters.sql.figures import gather
from xfq.adapters.sql.schema import create_engine, sqlite_url
from xfq.demo import EXAMPLE, run_demo
from xfq.domain.errors import ReportInputError
from xfq.reports import ledger_db
from xfq.reports.round_report import RoundReport, build_report, report_for
from xfq.reports.sections import Section, SectionReader
from xfq.reports.xlsx import SHEETS, write_xlsx
from xfq.simulation.spending import TRUE_EXTRA_PER_YUAN

MADE_AT = datetime(2022, 3, 12, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    quiet = Console(file=io.StringIO())
    assert run_demo(EXAMPLE, workdir, 15_000, 20, 2022, "r6", quiet).ok
    return workdir


@pytest.fixture(scope="module")
def report(demo: Path) -> RoundReport:
    return report_for(str(demo / "ledger.db"), "r6", MADE_AT, demo / "spending.parquet")


def test_counts_and_money_per_type_equal_the_ledgers(demo: Path, report: RoundReport) -> None:
    expected = {t.type_id: t for t in gather(create_engine(sqlite_url(demo / "ledger.db"))).types}
    for line in report.figures.types:
        e = expected[line.type_id]
        t = line.tally
        assert (t.stock, t.claimed, t.redeemed, t.expired, t.unused) == (
            e.count,
            e.issued,
            e.redeemed,
            e.expired,
            e.available,
        )
        assert (t.reversals, t.discount_fen) == (e.reversed_redemptions, e.discount_fen)
    assert report.figures.total.claimed > 0 and report.figures.total.redeemed > 0


def test_order_value_people_and_sold_out_moments_equal_plain_sql(
    demo: Path, report: RoundReport
) -> None:
    with sqlite3.connect(demo / "ledger.db") as db:
        value, discount = db.execute(
            "SELECT sum(list_price_fen - merchant_promotion_fen), sum(discount_fen) "
            "FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id "
            "WHERE r.state = 'posted' AND v.round_id = 'r6'"
        ).fetchone()
        people = db.execute(
            "SELECT count(DISTINCT person_id) FROM vouchers WHERE round_id = 'r6'"
        ).fetchone()[0]
        last = dict(db.execute("SELECT type_id, max(issued_at_us) FROM vouchers GROUP BY 1"))
    f = report.figures
    assert (f.total.order_value_fen, f.total.discount_fen, f.people) == (value, discount, people)
    assert f.total.leverage == value / discount
    sold_out = [t for t in f.types if t.tally.claimed == t.tally.stock]
    assert sold_out, "the reference round sells out some types with 15,000 people"
    for t in sold_out:
        assert t.sold_out_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=last[t.type_id]
        )
    assert all(t.sold_out_at is None for t in f.types if t.tally.claimed < t.tally.stock)


def test_days_and_categories_add_up_to_the_round(report: RoundReport) -> None:
    f = report.figures
    by_day = [tally for _day, tally in f.day_totals()]
    for name in ("claimed", "redeemed", "expired", "reversals", "discount_fen", "order_value_fen"):
        assert sum(getattr(t, name) for t in by_day) == getattr(f.total, name), name
        assert sum(getattr(c.tally, name) for c in f.categories) == getattr(f.total, name), name
    opening = report.round.opens_at.astimezone(report.campaign.tz).date()
    assert f.day_totals()[0] == (opening, f.day_totals()[0][1])  # claims happen on opening day
    assert f.day_totals()[0][1].claimed == f.total.claimed


def test_the_sell_out_curve_climbs_to_each_sold_out_types_stock(report: RoundReport) -> None:
    f = report.figures
    for t in f.types:
        points = [p for p in f.curve if p.type_id == t.type_id]
        claims = [p.claimed for p in points]
        assert claims == sorted(claims)
        if t.sold_out_after_s is not None:
            assert claims[-1] == t.tally.stock
            # the curve's last step is the tenth of a second in which the last voucher went
            assert t.sold_out_after_s < points[-1].after_s <= t.sold_out_after_s + 0.1 + 1e-9


def test_the_demo_feed_gives_back_the_true_effect(report: RoundReport) -> None:
    causal = report.causal
    assert causal is not None
    assert causal.extra_per_yuan.low <= TRUE_EXTRA_PER_YUAN <= causal.extra_per_yuan.high
    assert report.figures.total.leverage is not None
    assert report.figures.total.leverage > causal.extra_per_yuan.high  # gross overstates


def test_the_fraud_section_lists_the_flags_the_demos_scan_stored(
    demo: Path, report: RoundReport
) -> None:
    fraud = next(s for s in report.sections if s.key == "fraud")
    with sqlite3.connect(demo / "ledger.db") as db:
        stored = db.execute("SELECT count(*) FROM fraud_flags WHERE status = 'open'").fetchone()[0]
    assert fraud.available and stored > 0  # the demo plants colluding merchants
    assert dict(fraud.headline)["open"] == len(fraud.rows) == stored
    assert all(row[5] for row in fraud.rows)  # each flag explains itself


def test_sections_say_not_available_without_their_tables(demo: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "older.db"  # a ledger from before settlement and fraud existed
    shutil.copy(demo / "ledger.db", ledger)
    with sqlite3.connect(ledger) as db:
        db.executescript(
            "DROP TABLE settlement_lines; DROP TABLE rollovers; DROP TABLE fraud_flags;"
        )
    made = report_for(str(ledger), "r6", MADE_AT)
    assert [(s.key, s.available) for s in made.sections] == [
        ("settlement", False),
        ("rollover", False),
        ("fraud", False),
    ]
    assert "no settlement_lines table" in made.sections[0].note


def test_a_section_reader_reads_its_table_when_the_ledger_has_it(
    demo: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "with-settlements.db"
    shutil.copy(demo / "ledger.db", ledger)
    with sqlite3.connect(ledger) as db:
        db.execute("CREATE TABLE settlements (merchant_id TEXT, owed_fen INTEGER)")
        db.execute("INSERT INTO settlements VALUES ('m1', 1250), ('m2', 50)")

    def read(con: duckdb.DuckDBPyConnection, _round_id: str) -> Section:
        rows = con.execute("SELECT * FROM ledger.settlements ORDER BY 1").fetchall()
        return Section("settlement", True, columns=("merchant_id", "owed_fen"), rows=tuple(rows))

    readers = (SectionReader("settlement", ("settlements",), read),)
    con = ledger_db.connect(str(ledger))
    try:
        made = build_report(con, str(ledger), "r6", MADE_AT, readers=readers)
    finally:
        con.close()
    assert made.sections == (
        Section(
            "settlement", True, columns=("merchant_id", "owed_fen"), rows=(("m1", 1250), ("m2", 50))
        ),
    )


# Rows in the money work's tables (migration 0005_money), as closing days and a rollover write them.
MONEY_ROWS = """
INSERT INTO settlement_lines VALUES
  ('2022-03-05', 'a', 'redemption', 'm1', 'r6-home-500-80', 'o1', 60000, 8000, 0, 0, 0),
  ('2022-03-05', 'b', 'redemption', 'm2', 'r6-home-500-80', 'o2', 60000, 8000, 0, 0, 1),
  ('2022-03-06', 'a', 'reversal', 'm1', 'r6-home-500-80', 'o1', 60000, 0, 8000, 0, 0),
  ('2022-03-06', 'c', 'redemption', 'm3', 'r6-retail-30-6', 'o3', 4000, 600, 0, 0, 0),
  ('2022-03-06', 'd', 'redemption', 'm3', 'r5-retail-30-6', 'o4', 4000, 600, 0, 0, 0);
INSERT INTO rollovers VALUES
  ('r5', 'r5-retail-30-6', 'r6', 'r6-retail-30-6', 10, 5, 9000, 15, 0, 0),
  ('r6', 'r6-home-500-80', 'r7', NULL, 0, 3, 24000, 0, 24000, 0);
"""


def test_settlement_and_rollover_are_read_from_the_money_tables(demo: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "with-money.db"
    shutil.copy(demo / "ledger.db", ledger)
    with sqlite3.connect(ledger) as db:
        db.executescript(MONEY_ROWS)
    made = report_for(str(ledger), "r6", MADE_AT)
    settlement, rollover, fraud = made.sections
    assert settlement.available
    assert dict(settlement.headline) == {
        "closed_days": 2,
        "settled_owed_fen": 8000 + 8000 - 8000 + 600,  # r5's line is another round's
        "held_fen": 8000,
    }
    assert settlement.rows == (("2022-03-05", 2, 16000, 8000, 2), ("2022-03-06", 2, -7400, 0, 2))
    assert rollover.available
    assert dict(rollover.headline) == {"rolled_out_fen": 24000, "rolled_in_fen": 9000}
    assert [r[:3] for r in rollover.rows] == [
        ("r5", "r5-retail-30-6", "r6"),
        ("r6", "r6-home-500-80", "r7"),
    ]
    assert fraud.available


def test_the_xlsx_has_every_sheet_and_the_ledgers_totals(
    report: RoundReport, tmp_path: Path
) -> None:
    path = tmp_path / "r6.xlsx"
    write_xlsx(report, path, "en")
    book = load_workbook(path)
    assert tuple(book.sheetnames) == SHEETS
    rows = list(book["Types"].iter_rows(values_only=True))
    assert rows[0][:6] == (
        "Voucher type",
        "Category",
        "Threshold ¥",
        "Discount ¥",
        "Issued (stock)",
        "Claimed",
    )
    total = rows[-1]
    f = report.figures.total
    assert total[0] == "Total"
    assert total[4:10] == (f.stock, f.claimed, f.redeemed, f.expired, f.unused, f.reversals)
    assert Decimal(str(total[10])) * 100 == f.discount_fen
    assert Decimal(str(total[11])) * 100 == f.order_value_fen
    assert len(rows) == len(report.figures.types) + 2
    summary = dict(book["Summary"].iter_rows(values_only=True))
    assert summary["People holding a voucher"] == report.figures.people
    causal = dict((r[0], r[1]) for r in book["Causal"].iter_rows(values_only=True))
    assert report.causal is not None
    assert causal["Extra spending per yuan of subsidy"] == pytest.approx(
        report.causal.extra_per_yuan.estimate, rel=1e-12
    )


def test_bad_inputs_are_refused_with_what_was_wrong(demo: Path, tmp_path: Path) -> None:
    ledger = str(demo / "ledger.db")
    with pytest.raises(ReportInputError, match=r"round 'r9' is not in the ledger's campaign"):
        report_for(ledger, "r9", MADE_AT)
    with pytest.raises(ReportInputError, match="no ledger file"):
        report_for(str(tmp_path / "missing.db"), "r6", MADE_AT)
    with pytest.raises(ReportInputError, match="expected a SQLite file or a postgresql://"):
        report_for("mysql://somewhere/db", "r6", MADE_AT)
    with pytest.raises(ReportInputError, match=r"spending feed .* no such file"):
        report_for(ledger, "r6", MADE_AT, tmp_path / "nope.parquet")


def test_the_report_reads_nothing_but_the_wheels_extensions(demo: Path) -> None:
    con = ledger_db.connect(f"sqlite:///{demo / 'ledger.db'}")
    try:
        loaded = con.execute(
            "SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded "
            "AND install_path <> '(BUILT-IN)'"
        ).fetchall()
        autoload = con.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone()
    finally:
        con.close()
    assert [name for name, _ in loaded] == ["sqlite_scanner"]
    assert autoload == (False,)
