"""The operators' dashboard: stock, claims per second, answers by code, live by SSE.

`/ops/events` pushes the live numbers about once a second. Every stream is bounded: it ends
after `max_events` (the browser's EventSource reconnects by itself), so a server shutting down
waits at most that long, and at most `MAX_STREAMS` run at once in one process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from xfq.adapters.sql.lottery import SqlLotteryStore
from xfq.api.auth.tokens import Role
from xfq.api.blocking import on_ledger, stock
from xfq.api.claiming import ClaimStats
from xfq.bootstrap import Container
from xfq.domain.campaign import Campaign
from xfq.domain.claim import ClaimCode
from xfq.ports import LotteryState
from xfq.web.common import (
    OPERATOR_COOKIE,
    SECURITY_HEADERS,
    SameOrigin,
    container_of,
    dev_token,
    end_session,
    read_form,
    render,
    signed_in,
    start_session,
    translator,
)
from xfq.web.i18n import Translator
from xfq.web.inprocess import call_api, write_headers
from xfq.web.wallet import category_name, round_name, voucher_label

router = APIRouter()
MAX_STREAMS = 32
SERIES_S = 60
ANSWER_CODES = [c.value for c in ClaimCode]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_DAY = 86_400_000_000

# When each sold-out type issued its last voucher: exact, from the ledger, not sampled.
_SOLD_OUT = sa.text(
    "SELECT type_id, count(*), max(issued_at_us) FROM vouchers "
    "WHERE type_id IN :ids GROUP BY type_id"
).bindparams(sa.bindparam("ids", expanding=True))
# Local day = (UTC microseconds + the zone's offset) // one day; exact for zones without DST
# changes during the campaign (Asia/Shanghai has none).
_BY_CATEGORY_DAY = sa.text(
    "SELECT v.category, (r.redeemed_at_us + :offset_us) / :us_per_day AS day, count(*), "
    "sum(r.discount_fen), sum(r.list_price_fen - r.merchant_promotion_fen) "
    "FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id WHERE r.state = 'posted' "
    "GROUP BY v.category, (r.redeemed_at_us + :offset_us) / :us_per_day ORDER BY 2, 1"
)


@dataclass
class LiveSettings:
    """Per app: how often the dashboard is pushed, for how long, and what is known so far."""

    interval_s: float = 1.0
    max_events: int = 120
    streams: int = 0
    sold_out_at: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class TypeRow:
    id: str
    round: str
    label: str
    category: str
    count: int
    remaining: int


@dataclass(frozen=True)
class DayRow:
    day: date
    category: str
    redemptions: int
    discount_fen: int
    order_value_fen: int


def live_settings(request: Request) -> LiveSettings:
    settings: LiveSettings = request.app.state.xfq_web_live
    return settings


def _sold_out_moments(container: Container, campaign: Campaign, ids: list[str]) -> dict[str, int]:
    counts = {vt.id: vt.count for r in campaign.rounds for vt in r.types}
    with container.ledger.engine.connect() as c:
        rows = c.execute(_SOLD_OUT, {"ids": ids}).all()
    return {type_id: last_us for type_id, n, last_us in rows if n >= counts[type_id]}


async def _note_sold_out(
    container: Container, campaign: Campaign, remaining: dict[str, int], live: LiveSettings
) -> None:
    for type_id, n in remaining.items():
        if n > 0:  # restocked by an updated campaign
            live.sold_out_at.pop(type_id, None)
    gone = [t for t, n in remaining.items() if n == 0 and t not in live.sold_out_at]
    if not gone:
        return
    found = await on_ledger(container, _sold_out_moments, container, campaign, gone)
    for type_id, last_us in found.items():
        live.sold_out_at[type_id] = _EPOCH + timedelta(microseconds=last_us)


async def live_numbers(request: Request) -> dict[str, Any]:
    """What the dashboard shows live, as JSON-ready values (times in the campaign's zone)."""
    container = container_of(request)
    stats: ClaimStats = request.app.state.claim_stats
    live = live_settings(request)
    campaign, engine = container.running()
    now = container.clock.now()
    remaining = await stock(engine)
    await _note_sold_out(container, campaign, remaining, live)
    now_s = int(now.timestamp())
    series = [stats.per_second.get(s, 0) for s in range(now_s - SERIES_S + 1, now_s + 1)]
    return {
        "now": now.astimezone(campaign.tz).strftime("%Y-%m-%d %H:%M:%S"),
        "remaining": remaining,
        "sold_out_at": {
            t: at.astimezone(campaign.tz).strftime("%m-%d %H:%M:%S")
            for t, at in live.sold_out_at.items()
        },
        "answers": {code: stats.by_code.get(code, 0) for code in ANSWER_CODES},
        "last_second": stats.per_second.get(now_s - 1, 0),
        "peak": max(series),
        "series": series,
    }


def type_rows(t: Translator, campaign: Campaign, remaining: dict[str, int]) -> list[TypeRow]:
    return [
        TypeRow(
            vt.id,
            round_name(t, rnd),
            voucher_label(t, vt),
            category_name(t, campaign, vt.category),
            vt.count,
            remaining.get(vt.id, 0),
        )
        for rnd in sorted(campaign.rounds, key=lambda r: r.opens_at, reverse=True)
        for vt in rnd.types
    ]


def fair_notes(
    t: Translator, campaign: Campaign, lotteries: dict[str, LotteryState]
) -> dict[str, list[str]]:
    """Per round: how it is issued fairly (lottery and its published hashes, waiting room,
    household cap, quotas), as short lines for the rounds table."""
    notes: dict[str, list[str]] = {}
    for r in campaign.rounds:
        lines = []
        if r.lottery is not None:
            draw_at = r.lottery.draw_at.astimezone(campaign.tz).strftime("%Y-%m-%d %H:%M")
            lines.append(f"{t('fair_lottery')} · {t('fair_draw_at')} {draw_at}")
            state = lotteries.get(r.id)
            if state is not None:
                lines.append(f"{t('fair_registered')} {state.registrations:,}")
                lines.append(f"seed SHA-256 {state.seed_sha256}")
                if state.registrations_sha256 is not None:
                    lines.append(f"list SHA-256 {state.registrations_sha256}")
        if r.waiting_room is not None:
            lines.append(f"{t('fair_waiting_room')} · {r.waiting_room.admit_per_second:,}/s")
        if r.limits.per_household is not None:
            lines.append(f"{t('fair_household')} {r.limits.per_household}")
        quotas = [vt.id for vt in r.types if vt.assisted or vt.districts]
        if quotas:
            lines.append(f"{t('fair_quotas')}: {', '.join(quotas)}")
        notes[r.id] = lines
    return notes


def round_rows(campaign: Campaign, now: datetime) -> list[dict[str, str]]:
    def state(opens_at: datetime, closes_at: datetime) -> str:
        return "planned" if now < opens_at else ("open" if now < closes_at else "closed")

    def local(moment: datetime) -> str:
        return moment.astimezone(campaign.tz).strftime("%Y-%m-%d %H:%M")

    return [
        {
            "id": r.id,
            "name": r.name,
            "opens": local(r.opens_at),
            "closes": local(r.claim_closes_at),
            "state": state(r.opens_at, r.claim_closes_at),
        }
        for r in sorted(campaign.rounds, key=lambda r: r.opens_at, reverse=True)
    ]


def day_rows(t: Translator, container: Container, campaign: Campaign) -> list[DayRow]:
    first = min((r.opens_at for r in campaign.rounds), default=container.clock.now())
    offset = first.astimezone(campaign.tz).utcoffset() or timedelta(0)
    params = {"offset_us": offset // timedelta(microseconds=1), "us_per_day": _US_PER_DAY}
    with container.ledger.engine.connect() as c:
        rows = c.execute(_BY_CATEGORY_DAY, params).all()
    return [
        DayRow(
            date(1970, 1, 1) + timedelta(days=int(day)),
            category_name(t, campaign, category),
            int(n),
            int(discount_fen),
            int(value_fen),
        )
        for category, day, n, discount_fen, value_fen in rows
    ]


def _lottery_states(container: Container, campaign: Campaign) -> dict[str, LotteryState]:
    store = SqlLotteryStore(container.ledger.engine)
    states = {r.id: store.state(r.id) for r in campaign.rounds if r.lottery is not None}
    return {round_id: s for round_id, s in states.items() if s is not None}


async def _dashboard(
    request: Request,
    role: Role,
    enrolled: dict[str, Any] | None = None,
    error: dict[str, str] | None = None,
) -> Response:
    container = container_of(request)
    t = translator(request)
    if container.campaign is None:
        empty = {"campaign": None, "role": role.value, "error": error, "enrolled": None}
        return render(request, "dashboard.html", empty)
    campaign = container.running()[0]
    numbers = await live_numbers(request)
    context: dict[str, Any] = {
        "campaign": campaign,
        "role": role.value,
        "numbers": numbers,
        "types": type_rows(t, campaign, numbers["remaining"]),
        "rounds": round_rows(campaign, container.clock.now()),
        "categories": [(c.id, category_name(t, campaign, c.id)) for c in campaign.categories],
        "category_names": {c.id: category_name(t, campaign, c.id) for c in campaign.categories},
        "enrolled": enrolled,
        "error": error,
    }
    # On a ledger thread: what is read here, and the fraud queue the template reads as it
    # renders (`fraud_review.fraud_queue`).
    return await on_ledger(container, _render_dashboard, request, t, campaign, context)


def _render_dashboard(
    request: Request, t: Translator, campaign: Campaign, context: dict[str, Any]
) -> Response:
    container = container_of(request)
    context = {
        **context,
        "fair": fair_notes(t, campaign, _lottery_states(container, campaign)),
        "days": day_rows(t, container, campaign),
        "merchants": container.ledger.merchants(),
    }
    return render(request, "dashboard.html", context)


@router.get("/ops")
async def ops_page(request: Request) -> Response:
    session = signed_in(request, OPERATOR_COOKIE, Role.OPERATOR, Role.AUDITOR)
    if session is None:
        context = {"dev_login": container_of(request).dev_issuer is not None}
        return render(request, "ops_login.html", context)
    return await _dashboard(request, session[0].role)


@router.post("/ops/login")
async def ops_login(request: Request, _: SameOrigin) -> Response:
    form = await read_form(request)
    role = Role.AUDITOR if form.get("role") == "auditor" else Role.OPERATOR
    token = dev_token(container_of(request), form.get("subject", ""), role, None)
    if token is None:
        context = {"dev_login": container_of(request).dev_issuer is not None, "error": True}
        return render(request, "ops_login.html", context, status=422)
    response = RedirectResponse("/ops", status_code=303)
    start_session(request, response, OPERATOR_COOKIE, token)
    return response


@router.post("/ops/logout")
async def ops_logout(_: SameOrigin) -> Response:
    return end_session("/ops", OPERATOR_COOKIE)


@router.post("/ops/merchants")
async def enroll(request: Request, _: SameOrigin) -> Response:
    """Enroll and approve a merchant through the operators' API; its key is shown once."""
    session = signed_in(request, OPERATOR_COOKIE, Role.OPERATOR)
    if session is None:
        return RedirectResponse("/ops", status_code=303)
    form = await read_form(request)
    auth = write_headers(session[1], json_body=True)
    body = {k: form.get(k, "") for k in ("id", "name", "category")}
    made = await call_api(request.app, "POST", "/v1/ops/merchants", auth, json.dumps(body).encode())
    if made.status == 201:
        path = f"/v1/ops/merchants/{quote(body['id'], safe='')}/approve"
        made = await call_api(request.app, "POST", path, auth)
    if made.status not in (200, 201):
        return await _dashboard(request, session[0].role, error=made.refusal)
    return await _dashboard(request, session[0].role, enrolled=made.body)


@router.post("/ops/rounds/{round_id}/{action}")
async def move_round(request: Request, round_id: str, action: str, _: SameOrigin) -> Response:
    """Open a round now or stop its claims, through the operators' API."""
    session = signed_in(request, OPERATOR_COOKIE, Role.OPERATOR)
    if session is None or action not in ("open", "cancel"):
        return RedirectResponse("/ops", status_code=303)
    path = f"/v1/ops/rounds/{quote(round_id, safe='')}/{action}"
    moved = await call_api(request.app, "POST", path, write_headers(session[1]))
    if moved.status != 200:
        return await _dashboard(request, session[0].role, error=moved.refusal)
    return RedirectResponse("/ops", status_code=303)


@router.get("/ops/events")
async def events(request: Request) -> Response:
    """Server-sent events of the live numbers, about once a second, for a bounded time."""
    if signed_in(request, OPERATOR_COOKIE, Role.OPERATOR, Role.AUDITOR) is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    live = live_settings(request)
    container = container_of(request)
    if live.streams >= MAX_STREAMS or container.campaign is None:
        return Response("busy", status_code=503, headers={"Retry-After": "5"})
    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    stream = _stream(request, live)
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def _stream(request: Request, live: LiveSettings) -> AsyncIterator[str]:
    live.streams += 1
    try:
        yield f"retry: {int(live.interval_s * 2000)}\n\n"
        for _ in range(live.max_events):
            data = json.dumps(await live_numbers(request), ensure_ascii=False)
            yield f"event: numbers\ndata: {data}\n\n"
            await asyncio.sleep(live.interval_s)
    finally:
        live.streams -= 1
