"""The round report's tables as XLSX sheets (XlsxWriter, as the settlement statements use), one
sheet per table of the HTML report.

Money is written in yuan as exact decimals (fen / 100) with a two-decimal number format; counts
as integers. Sheet names are stable (English) so that other tools can find them; the headers
are in the report's language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

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


def yuan(fen: int) -> Decimal:
    return Decimal(fen) / 100


class _Book:
    """A workbook with the two formats the sheets use and a row cursor per sheet."""

    def __init__(self, path: Path) -> None:
        self.book = Workbook(str(path))
        self.bold: Format = self.book.add_format({"bold": True})
        self.money: Format = self.book.add_format({"num_format": YUAN_FORMAT})
        self.sheets = {name: self.book.add_worksheet(name) for name in SHEETS}
        self.rows = dict.fromkeys(SHEETS, 0)

    def append(self, sheet: str, row: Sequence[Cell], bold: bool = False) -> None:
        target: Worksheet = self.sheets[sheet]
        for column, value in enumerate(row):
            style = self.bold if bold else self.money if isinstance(value, Decimal) else None
            target.write(self.rows[sheet], column, value, style)
        self.rows[sheet] += 1

    def close(self) -> None:
        self.book.close()


def write_xlsx(report: RoundReport, path: Path, lang: Lang = "zh") -> None:
    label = labeller(lang)
    category = category_namer(report.campaign, lang)
    f = report.figures
    book = _Book(path)
    _pairs(book, "Summary", _summary(report, label))
    _table(
        book,
        "Types",
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
        book,
        "Categories",
        label,
        ["col_category", "col_stock", *TALLY_KEYS],
        [[category(c.category), c.tally.stock, *_tally(c.tally)] for c in f.categories],
    )
    _table(
        book,
        "Days",
        label,
        ["col_day", "col_category", *TALLY_KEYS],
        [[d.day.isoformat(), category(d.category), *_tally(d.tally)] for d in f.days],
    )
    book.append("SellOut", ["type_id", "seconds_after_opening", "claimed_cumulative"], bold=True)
    for p in f.curve:
        book.append("SellOut", [p.type_id, p.after_s, p.claimed])
    _causal(book, report, label)
    _sections(book, report, label)
    book.close()


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
    book: _Book, sheet: str, label: Label, keys: Sequence[str], rows: Sequence[Sequence[Cell]]
) -> None:
    book.append(sheet, [label(k) for k in keys], bold=True)
    for row in rows:
        book.append(sheet, row)
    book.sheets[sheet].set_column(0, len(keys) - 1, 16)


def _pairs(book: _Book, sheet: str, pairs: Sequence[tuple[str, Cell]]) -> None:
    for name, value in pairs:
        book.append(sheet, [name, value])
    book.sheets[sheet].set_column(0, 0, 44)
    book.sheets[sheet].set_column(1, 1, 24)


def _summary(report: RoundReport, label: Label) -> list[tuple[str, Cell]]:
    f = report.figures
    return [
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
    ]


def _causal(book: _Book, report: RoundReport, label: Label) -> None:
    c = report.causal
    if c is None:
        book.append("Causal", [label("causal_missing")])
        return
    placebo = c.placebo_per_day_fen.estimate / 100 if c.placebo_per_day_fen else None
    _pairs(
        book,
        "Causal",
        [
            (label("extra_per_yuan"), c.extra_per_yuan.estimate),
            ("95% low", c.extra_per_yuan.low),
            ("95% high", c.extra_per_yuan.high),
            (label("effect_per_day"), c.effect_per_day_fen.estimate / 100),
            (label("placebo"), placebo),
            (label("winners"), c.winners),
            (label("others"), c.others),
            (label("subsidy_in_feed"), yuan(c.subsidy_fen)),
            (label("window"), label("window_value", weeks=c.weeks)),
            (label("bootstrap"), c.draws),
            (label("method"), METHOD),
            *((label("assumptions"), a) for a in ASSUMPTIONS),
        ],
    )


def _sections(book: _Book, report: RoundReport, label: Label) -> None:
    for s in report.sections:
        state = "" if s.available else label("not_available")
        book.append("Sections", [label(s.key), state, s.note], bold=True)
        for name, value in s.headline:
            book.append(
                "Sections",
                [name, yuan(value) if name.endswith("_fen") and isinstance(value, int) else value],
            )
        if s.columns:
            book.append("Sections", list(s.columns), bold=True)
            for row in s.rows:
                book.append("Sections", list(row))
        book.rows["Sections"] += 1
