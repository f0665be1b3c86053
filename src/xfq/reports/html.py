"""The round report as HTML: a body fragment (also shown on /ops) and a self-contained page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from xfq.domain.money import format_yuan
from xfq.reports import causal, charts
from xfq.reports.labels import ASSUMPTIONS_ZH, METHOD_ZH, Lang, category_namer, labeller
from xfq.reports.round_report import RoundReport

TEMPLATES = Path(__file__).parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _thousands(n: int) -> str:
    return f"{n:,}"


def _yuan(fen: int) -> str:
    whole, _, cents = format_yuan(fen).partition(".")
    return f"{int(whole):,}.{cents}"


def _ratio(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


_env.filters.update(n=_thousands, yuan=_yuan, ratio=_ratio, pct=_percent)


def context(report: RoundReport, lang: Lang) -> dict[str, Any]:
    label = labeller(lang)
    category = category_namer(report.campaign, lang)
    figures = report.figures
    images = {
        "sell_out": charts.sell_out(figures, label),
        "daily": charts.daily(figures, category, label),
        "by_type": charts.by_type(figures, label),
    }
    if report.causal is not None:
        images["did"] = charts.did(report.causal, label)
    tz = report.campaign.tz
    return {
        "r": report,
        "f": figures,
        "L": label,
        "category": category,
        "charts": images,
        "opens": report.round.opens_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "made": report.made_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
        "local_time": lambda moment: moment.astimezone(tz).strftime("%m-%d %H:%M:%S.%f")[:-3],
        "lang": lang,
        "method": METHOD_ZH if lang == "zh" else causal.METHOD,
        "assumptions": ASSUMPTIONS_ZH if lang == "zh" else causal.ASSUMPTIONS,
    }


def render_body(report: RoundReport, lang: Lang = "zh") -> Markup:
    return Markup(_env.get_template("report_body.html").render(context(report, lang)))


def render_page(report: RoundReport, lang: Lang = "zh") -> str:
    """One HTML file with everything inside: styles, tables, charts as SVG data URIs; no script."""
    return _env.get_template("report_page.html").render(
        body=render_body(report, lang), title=_title(report, lang), lang=lang
    )


def _title(report: RoundReport, lang: Lang) -> str:
    return f"{report.campaign.name} · {report.round.name} · {labeller(lang)('title')}"
