"""`/ops/report/{round}`: the round report on the operators' dashboard, same body as the file.

The report is read from the server's own ledger through DuckDB in a worker thread (it reads
the ledger read-only and never blocks the event loop). Operators and auditors may read it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from xfq.api.auth.tokens import Role
from xfq.domain.errors import ReportInputError
from xfq.web.common import OPERATOR_COOKIE, container_of, render, signed_in, translator

router = APIRouter()


@router.get("/ops/report")
async def latest_report(request: Request) -> Response:
    """The report of the round that opened last."""
    container = container_of(request)
    if container.campaign is None:
        return RedirectResponse("/ops", status_code=303)
    latest = max(container.campaign.rounds, key=lambda r: r.opens_at)
    return RedirectResponse(f"/ops/report/{latest.id}", status_code=303)


@router.get("/ops/report/{round_id}")
async def round_report(request: Request, round_id: str) -> Response:
    if signed_in(request, OPERATOR_COOKIE, Role.OPERATOR, Role.AUDITOR) is None:
        return RedirectResponse("/ops", status_code=303)
    container = container_of(request)
    campaign = container.campaign
    if campaign is None:
        return RedirectResponse("/ops", status_code=303)
    lang = translator(request).lang
    context: dict[str, Any] = {
        "rounds": sorted(campaign.rounds, key=lambda r: r.opens_at, reverse=True),
        "round_id": round_id,
        "title": f"{campaign.name} · {round_id}",
        "body": None,
        "error": None,
    }
    try:
        context["body"] = await asyncio.to_thread(
            _render, container.settings.database_url, round_id, container.clock.now(), lang
        )
    except ReportInputError as error:
        context["error"] = str(error)
        return render(request, "ops_report.html", context, status=404)
    return render(request, "ops_report.html", context)


def _render(database_url: str, round_id: str, now: Any, lang: str) -> Any:
    from xfq.reports.html import render_body
    from xfq.reports.round_report import report_for

    report = report_for(database_url, round_id, now)
    return render_body(report, "en" if lang == "en" else "zh")
