"""The citizen's page: sign in, the round's voucher types with live stock, grab, the wallet."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from xfq.api.auth.tokens import Role
from xfq.api.blocking import on_ledger
from xfq.api.claiming import ClaimStats, citizen_of, claim
from xfq.api.ratelimit import RateLimiter
from xfq.bootstrap import Container
from xfq.domain.campaign import Campaign, Round, VoucherType
from xfq.domain.money import format_yuan_short
from xfq.domain.till_code import DEFAULT_TTL
from xfq.domain.voucher import VoucherState
from xfq.services.wallet import wallet
from xfq.web.common import (
    CITIZEN_COOKIE,
    IDEMPOTENCY_KEY,
    SUBJECT,
    SameOrigin,
    container_of,
    dev_token,
    end_session,
    new_key,
    read_form,
    render,
    signed_in,
    start_session,
    translator,
)
from xfq.web.i18n import Translator, known
from xfq.web.inprocess import call_api

router = APIRouter()
# The till code lives DEFAULT_TTL (90 s); the page fetches a new one well before it lapses.
TILL_REFRESH_S = max(5, int(DEFAULT_TTL.total_seconds()) - 30)
RESIDENCIES = ("permanent", "work", "study", "visit")


@dataclass(frozen=True)
class TypeView:
    id: str
    label: str
    category: str
    remaining: int
    count: int
    per_person: int
    key: str  # idempotency key of this rendering's grab button


@dataclass(frozen=True)
class RoundView:
    name: str
    state: str  # upcoming | open | closed
    opens_at: datetime
    closes_at: datetime
    now: datetime
    types: list[TypeView]

    @property
    def countdown(self) -> str:
        """Time left to the opening as HH:MM:SS (the page script keeps it ticking)."""
        left_s = max(0, math.ceil((self.opens_at - self.now).total_seconds()))
        return f"{left_s // 3600:02d}:{left_s % 3600 // 60:02d}:{left_s % 60:02d}"


@dataclass(frozen=True)
class VoucherView:
    id: str
    label: str
    category: str
    state: str
    valid_from: datetime
    valid_last: datetime  # the last minute it can be used (its validity ends just after)
    usable: bool


def voucher_label(t: Translator, vtype: VoucherType) -> str:
    return t(
        "voucher_label",
        threshold=format_yuan_short(vtype.threshold_fen),
        discount=format_yuan_short(vtype.discount_fen),
    )


def category_name(t: Translator, campaign: Campaign, category_id: str) -> str:
    category = campaign.category(category_id)
    return category.name if t.lang == "zh" else category.name_en


def round_name(t: Translator, rnd: Round) -> str:
    return rnd.name if t.lang == "zh" else t("round_name_en", name=rnd.name, number=rnd.number)


def current_round(campaign: Campaign, now: datetime) -> Round | None:
    """The round open now, else the next to open, else the last one that opened."""
    rounds = sorted(campaign.rounds, key=lambda r: r.opens_at)
    for rnd in rounds:
        if rnd.is_open(now):
            return rnd
    upcoming = [r for r in rounds if r.opens_at > now]
    if upcoming:
        return upcoming[0]
    return rounds[-1] if rounds else None


def round_view(t: Translator, container: Container) -> RoundView | None:
    if container.campaign is None or container.engine is None:
        return None
    campaign, engine = container.running()
    now = container.clock.now()
    rnd = current_round(campaign, now)
    if rnd is None:
        return None
    stock = engine.stock()
    state = "open" if rnd.is_open(now) else ("upcoming" if now < rnd.opens_at else "closed")
    types = [
        TypeView(
            id=vt.id,
            label=voucher_label(t, vt),
            category=category_name(t, campaign, vt.category),
            remaining=stock.get(vt.id, 0),
            count=vt.count,
            per_person=vt.per_person,
            key=new_key("web-grab"),
        )
        for vt in rnd.types
    ]
    return RoundView(round_name(t, rnd), state, rnd.opens_at, rnd.claim_closes_at, now, types)


def wallet_views(t: Translator, container: Container, person_id: str) -> list[VoucherView]:
    if container.campaign is None:
        return []
    campaign = container.campaign
    now = container.clock.now()
    views = []
    for entry in wallet(container.ledger.reader(), campaign, person_id):
        v = entry.voucher
        views.append(
            VoucherView(
                id=v.id,
                label=voucher_label(t, entry.voucher_type),
                category=category_name(t, campaign, v.category),
                state=v.state.value,
                valid_from=v.valid_from,
                valid_last=v.valid_until - timedelta(minutes=1),
                usable=v.state is VoucherState.ISSUED and v.valid_from <= now < v.valid_until,
            )
        )
    return views


async def _context(request: Request, subject: str | None) -> dict[str, Any]:
    """What the wallet's templates show, read on a ledger thread (the round's stock is a Redis
    round trip on the Redis engine)."""
    return await on_ledger(container_of(request), _read_context, request, subject)


def _read_context(request: Request, subject: str | None) -> dict[str, Any]:
    container = container_of(request)
    t = translator(request)
    return {
        "subject": subject,
        "round": round_view(t, container),
        "vouchers": wallet_views(t, container, subject) if subject else [],
        "tz": container.campaign.tz if container.campaign else None,
        "dev_login": container.dev_issuer is not None,
        "residencies": RESIDENCIES,
        "till_refresh_s": TILL_REFRESH_S,
    }


def _subject(request: Request) -> str | None:
    session = signed_in(request, CITIZEN_COOKIE, Role.CITIZEN)
    return session[0].subject if session else None


@router.get("/")
async def wallet_page(request: Request) -> Response:
    return render(request, "wallet.html", await _context(request, _subject(request)))


@router.get("/wallet/round")
async def round_fragment(request: Request) -> Response:
    return render(request, "_round.html", await _context(request, _subject(request)))


@router.get("/wallet/vouchers")
async def vouchers_fragment(request: Request) -> Response:
    return render(request, "_vouchers.html", await _context(request, _subject(request)))


@router.post("/wallet/login")
async def login(request: Request, _: SameOrigin) -> Response:
    form = await read_form(request)
    residency = form.get("residency", "permanent")
    token = dev_token(
        container_of(request),
        form.get("subject", ""),
        Role.CITIZEN,
        residency if residency in RESIDENCIES else None,
        in_city=form.get("in_city") == "on",
    )
    if token is None:
        context = {**await _context(request, None), "login_error": "subject_invalid"}
        return render(request, "wallet.html", context, status=422)
    response = RedirectResponse("/", status_code=303)
    start_session(request, response, CITIZEN_COOKIE, token)
    return response


@router.post("/wallet/logout")
async def logout(_: SameOrigin) -> Response:
    return end_session("/", CITIZEN_COOKIE)


@router.post("/wallet/grab")
async def grab(request: Request, _: SameOrigin) -> Response:
    """The grab button: the same claim path as `POST /v1/claims`, rate limits included."""
    session = signed_in(request, CITIZEN_COOKIE, Role.CITIZEN)
    if session is None:
        return render(request, "_message.html", {"message": "session_expired"})
    identity = session[0]
    form = await read_form(request)
    type_id, key = form.get("type_id", ""), form.get("key", "")
    if not 0 < len(type_id) <= 64 or not IDEMPOTENCY_KEY.fullmatch(key):
        return render(request, "_message.html", {"message": "claim_failed"})
    container = container_of(request)
    limiter: RateLimiter = request.app.state.limiter
    address = request.client.host if request.client else "unknown"
    wait_s = limiter.check(identity.subject, address, container.clock.now())
    if wait_s is not None:
        seconds = max(1, math.ceil(wait_s))
        context: dict[str, Any] = {"message": "rate_limited", "values": {"seconds": seconds}}
        return render(request, "_message.html", context, headers={"Retry-After": str(seconds)})
    stats: ClaimStats = request.app.state.claim_stats
    code = (await claim(container, citizen_of(identity), type_id, key, stats))[1]["code"]
    context = {"message": known(f"claim_{code}", "claim_failed"), "good": code == "issued"}
    return render(request, "_message.html", context, headers={"HX-Trigger": "wallet-changed"})


@router.post("/wallet/till-code")
async def till_code(request: Request, _: SameOrigin) -> Response:
    """A fresh signed code and its QR for one voucher, through the citizens' API."""
    session = signed_in(request, CITIZEN_COOKIE, Role.CITIZEN)
    if session is None:
        return render(request, "_message.html", {"message": "session_expired"})
    form = await read_form(request)
    voucher_id = form.get("voucher_id", "")
    if not SUBJECT.fullmatch(voucher_id):
        return render(request, "_message.html", {"message": "code_unavailable"})
    answer = await call_api(
        request.app,
        "POST",
        f"/v1/vouchers/{quote(voucher_id, safe='')}/till-code",
        {"Authorization": f"Bearer {session[1]}"},
    )
    if answer.status != 200:
        return render(request, "_message.html", {"message": "code_unavailable"})
    container = container_of(request)
    context = {
        "voucher_id": voucher_id,
        "code": answer.body["code"],
        "qr_svg": answer.body["qr_svg"],
        "expires_at": datetime.fromisoformat(answer.body["expires_at"]),
        "tz": container.running()[0].tz,
        "till_refresh_s": TILL_REFRESH_S,
    }
    return render(request, "_till_code.html", context)
