"""The fraud review section of the operators' dashboard: the flags, and forms to run a scan,
confirm (optionally suspending the merchant) or dismiss — each through the operators' API.

The section is its own template (`_fraud.html`), included by the dashboard; it reads its flags
through `fraud_queue(request)`, a template global, so the dashboard's handler needs no change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from xfq.adapters.sql.fraud import StoredFlag, flag_counts, list_flags
from xfq.api.auth.tokens import Role
from xfq.domain.fraud import Rule
from xfq.web.common import (
    OPERATOR_COOKIE,
    SameOrigin,
    container_of,
    read_form,
    signed_in,
    templates,
)
from xfq.web.i18n import MESSAGES
from xfq.web.inprocess import call_api, write_headers

router = APIRouter()
SHOWN_FLAGS = 100

MESSAGES.update(
    {
        "fraud_heading": ("套现风险提示", "Cash-out fraud signals"),
        "fraud_empty": ("暂无风险提示。", "No fraud signals."),
        "fraud_scan": ("立即扫描", "Scan now"),
        "fraud_counts": (
            "待审核 {open} · 已确认 {confirmed} · 已排除 {dismissed}",
            "Open {open} · confirmed {confirmed} · dismissed {dismissed}",
        ),
        "fraud_refused": ("操作未完成（{code}）：{detail}", "Not done ({code}): {detail}"),
        "fraud_reason": ("理由", "Reason"),
        "fraud_suspend": ("同时暂停该商户", "Also suspend the merchant"),
        "fraud_confirm": ("确认", "Confirm"),
        "fraud_dismiss": ("排除", "Dismiss"),
        "fraud_reviewed": ("{who}：{reason}", "{who}: {reason}"),
        "col_rule": ("规则", "Rule"),
        "col_evidence": ("依据", "Evidence"),
        "fraud_rule_threshold_hugging": ("订单金额贴近门槛", "Orders just above the threshold"),
        "fraud_rule_repeat_pair": ("同一付款人反复消费", "Same payer again and again"),
        "fraud_rule_redeem_then_refund": ("核销后即退款", "Redeemed, then refunded"),
        "fraud_rule_opening_burst": ("开抢后集中核销", "Burst right after the release"),
        "fraud_rule_far_payers": ("大量外地付款人", "Many payers from far away"),
        "fraud_rule_abnormal_share": ("券交易占比异常", "Abnormal voucher share"),
        "fraud_status_open": ("待审核", "Open"),
        "fraud_status_confirmed": ("已确认", "Confirmed"),
        "fraud_status_dismissed": ("已排除", "Dismissed"),
    }
)
assert all(f"fraud_rule_{r.value}" in MESSAGES for r in Rule)


@dataclass(frozen=True)
class Queue:
    flags: list[StoredFlag]
    counts: dict[str, int]
    error: dict[str, str] | None


def fraud_queue(request: Request) -> Queue:
    """Open flags first, then reviewed ones; with any error of the last action.

    A template global reads the ledger while the page renders: the dashboard renders on a
    ledger thread for this (`web/dashboard.py`), never on the event loop."""
    engine = container_of(request).ledger.engine
    flags = list_flags(engine, limit=SHOWN_FLAGS)
    code = request.query_params.get("fraud_error")
    error = (
        None if code is None else {"code": code, "detail": request.query_params.get("detail", "")}
    )
    return Queue(flags, flag_counts(engine), error)


templates.env.globals["fraud_queue"] = fraud_queue


def _back(error: dict[str, Any] | None = None) -> Response:
    if error is None:
        return RedirectResponse("/ops#fraud", status_code=303)
    query = urlencode({"fraud_error": error["code"], "detail": error["detail"]})
    return RedirectResponse(f"/ops?{query}#fraud", status_code=303)


async def _call(request: Request, token: str, path: str, body: dict[str, Any] | None) -> Response:
    raw = b"" if body is None else json.dumps(body).encode()
    answer = await call_api(request.app, "POST", path, write_headers(token, json_body=True), raw)
    if answer.status != 200:
        return _back(answer.refusal)
    return _back()


@router.post("/ops/fraud/scan")
async def scan(request: Request, _: SameOrigin) -> Response:
    session = signed_in(request, OPERATOR_COOKIE, Role.OPERATOR)
    if session is None:
        return RedirectResponse("/ops", status_code=303)
    return await _call(request, session[1], "/v1/ops/fraud/scan", None)


@router.post("/ops/fraud/{flag_id}/{action}")
async def review(request: Request, flag_id: str, action: str, _: SameOrigin) -> Response:
    session = signed_in(request, OPERATOR_COOKIE, Role.OPERATOR)
    if session is None or action not in ("confirm", "dismiss"):
        return RedirectResponse("/ops", status_code=303)
    form = await read_form(request)
    body: dict[str, Any] = {"reason": form.get("reason", "")}
    if action == "confirm":
        body["suspend_merchant"] = form.get("suspend") == "on"
    path = f"/v1/ops/fraud/flags/{quote(flag_id, safe='')}/{action}"
    return await _call(request, session[1], path, body)
