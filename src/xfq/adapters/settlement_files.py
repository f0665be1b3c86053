"""A day's settlement as files for finance (CSV and XLSX) and a merchant's statement (CSV).

Deterministic on purpose: the same settlement gives the same bytes (no "generated at", rows in
a stable order, the XLSX's creation date fixed to the end of the day settled).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path

import xlsxwriter

from xfq.domain.money import FEN_PER_YUAN, format_yuan
from xfq.domain.settlement import DaySettlement, Statement

LINE_COLUMNS = (
    "day",
    "merchant_id",
    "merchant_name",
    "status",
    "kind",
    "redemption_id",
    "voucher_type",
    "order_ref",
    "at",
    "order_amount_yuan",
    "discount_yuan",
    "reversal_yuan",
    "owed_yuan",
)
SUMMARY_COLUMNS = (
    "merchant_id",
    "merchant_name",
    "status",
    "redemptions",
    "reversals",
    "discount_yuan",
    "reversal_yuan",
    "owed_yuan",
    "payable_yuan",
)


_BLANK5 = ("", "", "", "", "")


def _status(statement: Statement) -> str:
    return "held" if statement.held else "payable"


def _line_rows(statement: Statement, names: Mapping[str, str], tz: tzinfo) -> list[list[str | int]]:
    """Each line, then the merchant's total: amounts in fen, as integers."""
    name, status, day = names.get(statement.merchant_id, ""), _status(statement), statement.day
    rows: list[list[str | int]] = [
        [
            day.isoformat(),
            statement.merchant_id,
            name,
            status,
            line.kind.value,
            line.redemption_id,
            line.type_id,
            line.order_ref,
            line.at.astimezone(tz).isoformat(timespec="seconds"),
            line.order_amount_fen,
            line.discount_fen,
            line.reversal_fen,
            line.owed_fen,
        ]
        for line in statement.lines
    ]
    rows.append(
        [
            *(day.isoformat(), statement.merchant_id, name, status, "merchant total", *_BLANK5),
            *(statement.discount_fen, statement.reversal_fen, statement.owed_fen),
        ]
    )
    return rows


def _totals(settlement: DaySettlement) -> list[list[str | int]]:
    day = settlement.day.isoformat()
    discount = sum(s.discount_fen for s in settlement.statements)
    reversal = sum(s.reversal_fen for s in settlement.statements)
    blank = ("", "", "", "", "")
    return [
        [day, "", "", "", "day total owed", *blank, discount, reversal, settlement.owed_fen],
        [day, "", "", "payable", "day total payable", *blank, "", "", settlement.payable_fen],
        [day, "", "", "held", "day total held", *blank, "", "", settlement.held_fen],
    ]


_AMOUNTS = slice(9, 13)  # the columns of LINE_COLUMNS that hold money


def _csv(rows: list[list[str | int]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LINE_COLUMNS)
    for row in rows:
        shown = list(row)
        shown[_AMOUNTS] = [x if x == "" else format_yuan(int(x)) for x in row[_AMOUNTS]]
        writer.writerow(shown)
    return out.getvalue()


def day_csv(settlement: DaySettlement, names: Mapping[str, str], tz: tzinfo) -> str:
    """Every merchant's lines and totals, then the day's totals (owed, payable, held)."""
    rows = [row for s in settlement.statements for row in _line_rows(s, names, tz)]
    return _csv(rows + _totals(settlement))


def statement_csv(statement: Statement, names: Mapping[str, str], tz: tzinfo) -> str:
    """One merchant's statement of one day."""
    return _csv(_line_rows(statement, names, tz))


def _yuan(fen: int) -> Decimal:
    return Decimal(fen) / FEN_PER_YUAN


def day_xlsx(settlement: DaySettlement, names: Mapping[str, str], tz: tzinfo, path: Path) -> None:
    """Two sheets: a summary per merchant with the day's totals, and every line."""
    end_of_day = datetime.combine(settlement.day + timedelta(days=1), time(0))
    book = xlsxwriter.Workbook(str(path), {"in_memory": True})
    book.set_properties(
        {
            "title": f"Settlement {settlement.day.isoformat()}",
            "author": "xfq",
            "created": end_of_day,
        }
    )
    money = book.add_format({"num_format": "#,##0.00"})
    bold = book.add_format({"bold": True})
    bold_money = book.add_format({"bold": True, "num_format": "#,##0.00"})
    summary = book.add_worksheet("Summary")
    summary.write_row(0, 0, SUMMARY_COLUMNS, bold)
    row = 1
    for s in settlement.statements:
        name = names.get(s.merchant_id, "")
        summary.write_row(row, 0, [s.merchant_id, name, _status(s), s.redemptions, s.reversals])
        # Excel keeps numbers as binary floats; yuan with two decimals round-trip exactly at
        # these magnitudes, and the CSV carries the same amounts as exact text.
        for col, fen in enumerate((s.discount_fen, s.reversal_fen, s.owed_fen, s.payable_fen), 5):
            summary.write_number(row, col, float(_yuan(fen)), money)
        row += 1
    for label, fen in (
        ("day total owed", settlement.owed_fen),
        ("day total payable", settlement.payable_fen),
        ("day total held", settlement.held_fen),
    ):
        summary.write(row, 0, label, bold)
        summary.write_number(row, 7, float(_yuan(fen)), bold_money)
        row += 1
    lines = book.add_worksheet("Lines")
    lines.write_row(0, 0, LINE_COLUMNS, bold)
    row = 1
    for s in settlement.statements:
        for values in _line_rows(s, names, tz)[:-1]:
            lines.write_row(row, 0, values[:9])
            for col in range(9, 13):
                lines.write_number(row, col, float(_yuan(int(values[col]))), money)
            row += 1
    book.close()


def write_day_files(
    settlement: DaySettlement, names: Mapping[str, str], tz: tzinfo, out_dir: Path
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"settlement-{settlement.day.isoformat()}"
    csv_path, xlsx_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.xlsx"
    csv_path.write_text(day_csv(settlement, names, tz), encoding="utf-8")
    day_xlsx(settlement, names, tz, xlsx_path)
    return csv_path, xlsx_path
