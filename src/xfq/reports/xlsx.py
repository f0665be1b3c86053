"""The round report's tables as XLSX sheets (openpyxl), one sheet per table of the HTML report.

Money is written in yuan as exact decimals (fen / 100) with a two-decimal number format; counts
as integers. Sheet names are stable (English) so that other tools can find them; the headers
are in the report's language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from xfq.reports.causal import ASSUMPTIONS, METHOD
from xfq.reports.figures import Tally
from xfq.reports.labels import Lang, category_namer, labeller
from xfq.reports.round_report import RoundReport

SHEETS = ("Summary", "Types", "Categories", "Days", "SellOut", "Causal", "Sections")
YUAN_FORMAT = "#,##0.00"
Cell = str | int | float | Decimal | None
Label = Callable[..., str]
TALLY_KEYS = (
    "col_claimed",
    "col_redeemed",
    "col_expired",
    "col_unused",
    "col_reversals",
    "col_discount",
    "col_order_value",
    "col_leverage",
)
MONEY_KEYS = frozenset({"col_discount", "col_order_value", "col_threshold", "col_face", "budget"})


def yuan(fen: int) -> Decimal:
    return Decimal(fen) / 100


def write_xlsx(report: RoundReport, path: Path, lang: Lang = "zh") -> None:
    label = labeller(lang)
    category = category_namer(report.campaign, lang)
    f = report.figures
    book = Workbook()
    for name in SHEETS:
        book.create_sheet(name)
    del book[book.sheetnames[0]]  # the empty default sheet
    _summary(book["Summary"], report, label)
    _table(
        book["Types"],
        label,
        ["col_type", "col_category", "col_threshold", "col_face", "col_stock", *TALLY_KEYS],
        [
            [
                t.type_id,
                category(t.category),
                yuan(t.threshold_fen),
                yuan(t.discount_fen),
                t.tally.stock,
                *_tally(t.tally),
            ]
            for t in f.types
        ]
        + [[label("total"), None, None, None, f.total.stock, *_tally(f.total)]],
    )
    _table(
        book["Categories"],
        label,
        ["col_category", "col_stock", *TALLY_KEYS],
        [[category(c.category), c.tally.stock, *_tally(c.tally)] for c in f.categories],
    )
    _table(
        book["Days"],
        label,
        ["col_day", "col_category", *TALLY_KEYS],
        [[d.day.isoformat(), category(d.category), *_tally(d.tally)] for d in f.days],
    )
    book["SellOut"].append(["type_id", "seconds_after_opening", "claimed_cumulative"])
    for p in f.curve:
        book["SellOut"].append([p.type_id, p.after_s, p.claimed])
    _causal(book["Causal"], report, label)
    _sections(book["Sections"], report, label)
    book.save(path)


def _tally(t: Tally) -> list[Cell]:
    return [
        t.claimed,
        t.redeemed,
        t.expired,
        t.unused,
        t.reversals,
        yuan(t.discount_fen),
        yuan(t.order_value_fen),
        t.leverage,
    ]


def _table(
    sheet: Worksheet, label: Label, keys: Sequence[str], rows: Sequence[Sequence[Cell]]
) -> None:
    sheet.append([label(k) for k in keys])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(list(row))
    for column, key in enumerate(keys, start=1):
        letter = sheet.cell(row=1, column=column).column_letter
        sheet.column_dimensions[letter].width = 16
        if key in MONEY_KEYS:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
                cell.number_format = YUAN_FORMAT


def _pairs(sheet: Worksheet, pairs: Sequence[tuple[str, Cell]]) -> None:
    for name, value in pairs:
        sheet.append([name, value])
        if isinstance(value, Decimal):
            sheet.cell(row=sheet.max_row, column=2).number_format = YUAN_FORMAT
    sheet.column_dimensions["A"].width = 44
    sheet.column_dimensions["B"].width = 24


def _summary(sheet: Worksheet, report: RoundReport, label: Label) -> None:
    f = report.figures
    _pairs(
        sheet,
        [
            ("campaign", report.campaign.name),
            ("round", report.round.id),
            ("opens_at", report.round.opens_at.isoformat()),
            ("made_at", report.made_at.isoformat()),
            (label("budget"), yuan(f.budget_fen)),
            (label("col_stock"), f.total.stock),
            (label("col_claimed"), f.total.claimed),
            (label("people"), f.people),
            (label("col_redeemed"), f.total.redeemed),
            (label("col_expired"), f.total.expired),
            (label("col_unused"), f.total.unused),
            (label("col_reversals"), f.total.reversals),
            (label("redemption_rate"), f.total.redemption_rate),
            (label("col_discount"), yuan(f.total.discount_fen)),
            (label("col_order_value"), yuan(f.total.order_value_fen)),
            (label("gross_leverage"), f.total.leverage),
        ],
    )


def _causal(sheet: Worksheet, report: RoundReport, label: Label) -> None:
    c = report.causal
    if c is None:
        sheet.append([label("causal_missing")])
        return
    _pairs(
        sheet,
        [
            (label("extra_per_yuan"), c.extra_per_yuan.estimate),
            ("95% low", c.extra_per_yuan.low),
            ("95% high", c.extra_per_yuan.high),
            (label("effect_per_day"), c.effect_per_day_fen.estimate / 100),
            (
                label("placebo"),
                c.placebo_per_day_fen.estimate / 100 if c.placebo_per_day_fen else None,
            ),
            (label("winners"), c.winners),
            (label("others"), c.others),
            (label("subsidy_in_feed"), yuan(c.subsidy_fen)),
            (label("window"), label("window_value", weeks=c.weeks)),
            (label("bootstrap"), c.draws),
            (label("method"), METHOD),
            *((label("assumptions"), a) for a in ASSUMPTIONS),
        ],
    )


def _sections(sheet: Worksheet, report: RoundReport, label: Label) -> None:
    for s in report.sections:
        sheet.append([label(s.key), "" if s.available else label("not_available"), s.note])
        sheet.cell(row=sheet.max_row, column=1).font = Font(bold=True)
        for name, value in s.headline:
            sheet.append([name, value])
        if s.columns:
            sheet.append(list(s.columns))
            for row in s.rows:
                sheet.append(list(row))
        sheet.append([])
