"""The report's charts: matplotlib figures rendered to SVG, shown as `data:` images.

Why matplotlib rather than Vega-Lite: the output is a finished static SVG, so the HTML report
needs no script at all (it opens offline, prints, and passes the dashboard's Content-Security-
Policy as an <img>), and there is no JavaScript bundle to vendor. Text stays text in the SVG
(`svg.fonttype = none`) so Chinese labels are drawn by the viewer's CJK font.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import date
from typing import Any

import matplotlib as mpl
from cycler import cycler
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from xfq.reports.causal import CausalEstimate
from xfq.reports.figures import LedgerFigures

# CJK fonts in order of preference; only installed ones are named (matplotlib logs each miss).
_CJK = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "SimHei")
_INSTALLED = {f.name for f in font_manager.fontManager.ttflist}

_STYLE: dict[Any, Any] = {  # Any: matplotlib types keys as a Literal of every rc name
    "svg.fonttype": "none",
    "svg.hashsalt": "xfq",  # the same report gives the same SVG
    "font.family": [*(f for f in _CJK if f in _INSTALLED), "DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.prop_cycle": cycler(
        color=["#c0392b", "#2471a3", "#229954", "#d68910", "#7d3c98", "#17a589", "#566573"]
    ),
}
SIZE_IN = (7.2, 3.2)

Label = Callable[[str], str]


def data_uri(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    encoded = base64.b64encode(buffer.getvalue().encode("utf-8")).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=SIZE_IN)
    return figure, figure.add_subplot()


def sell_out(figures: LedgerFigures, label: Label) -> str:
    """Share of each type's stock claimed over the seconds after the opening (log time)."""
    with mpl.rc_context(_STYLE):
        figure, ax = _figure()
        for line in figures.types:
            type_id, stock = line.type_id, line.tally.stock
            points = [p for p in figures.curve if p.type_id == type_id]
            if not points:
                continue
            xs = [0.1, *(p.after_s for p in points)]
            ys = [0.0, *(p.claimed / stock for p in points)]
            ax.step(xs, ys, where="post", label=type_id, linewidth=1.4)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_seconds))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(label("chart_after_opening"))
        ax.set_ylabel(label("chart_share_claimed"))
        ax.legend(fontsize=7, ncols=2, frameon=False, loc="upper left")
        return data_uri(figure)


def _seconds(value: float, _pos: int) -> str:
    if value < 60:
        return f"{value:g} s"
    if value < 3600:
        return f"{value / 60:g} min"
    return f"{value / 3600:g} h"


def daily(figures: LedgerFigures, category_name: Label, label: Label) -> str:
    """Discount paid per day, stacked by category (yuan)."""
    with mpl.rc_context(_STYLE):
        figure, ax = _figure()
        days = sorted({d.day for d in figures.days})
        bottom = [0.0] * len(days)
        for category in dict.fromkeys(c.category for c in figures.categories):
            by_day: dict[date, int] = {
                d.day: d.tally.discount_fen for d in figures.days if d.category == category
            }
            heights = [by_day.get(day, 0) / 100 for day in days]
            ax.bar(
                [d.strftime("%m-%d") for d in days],
                heights,
                bottom=bottom,
                label=category_name(category),
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
        ax.set_ylabel(label("chart_discount_yuan"))
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.legend(fontsize=7, frameon=False)
        return data_uri(figure)


def by_type(figures: LedgerFigures, label: Label) -> str:
    """Per type: stock, claimed, redeemed and expired side by side."""
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(SIZE_IN[0], 0.45 * len(figures.types) + 1.0))
        ax = figure.add_subplot()
        names = [t.type_id for t in figures.types][::-1]
        lines = figures.types[::-1]
        rows = range(len(names))
        bars = (
            ("col_stock", [t.tally.stock for t in lines], "#d5d8dc"),
            ("col_claimed", [t.tally.claimed for t in lines], "#2471a3"),
            ("col_redeemed", [t.tally.redeemed for t in lines], "#229954"),
            ("col_expired", [t.tally.expired for t in lines], "#c0392b"),
        )
        height = 0.2
        for i, (key, values, color) in enumerate(bars):
            ax.barh(
                [r + (1.5 - i) * height for r in rows],
                values,
                height,
                label=label(key),
                color=color,
            )
        ax.set_yticks(list(rows), names, fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
        ax.legend(fontsize=7, frameon=False, ncols=4, loc="lower right")
        return data_uri(figure)


def did(estimate: CausalEstimate, label: Label) -> str:
    """Mean daily spending before and after, winners and others: the picture of the DiD."""
    with mpl.rc_context(_STYLE):
        figure, ax = _figure()
        xs = [label("chart_before"), label("chart_after")]
        winners = [estimate.pre_mean_fen[0] / 100, estimate.post_mean_fen[0] / 100]
        others = [estimate.pre_mean_fen[1] / 100, estimate.post_mean_fen[1] / 100]
        ax.plot(xs, winners, marker="o", label=label("group_winners"))
        ax.plot(xs, others, marker="o", label=label("group_others"))
        trend = others[1] - others[0]
        counterfactual = [winners[0], winners[0] + trend]
        ax.plot(
            xs, counterfactual, linestyle="--", color="#7f8c8d", label=label("group_counterfactual")
        )
        ax.set_ylabel(label("chart_daily_spend_yuan"))
        ax.legend(fontsize=7, frameon=False)
        return data_uri(figure)
