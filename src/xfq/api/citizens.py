"""What a citizen's wallet app calls: the campaign, the grab, the wallet, the till code."""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from xfq.api.blocking import read_ledger, stock
from xfq.api.claiming import claim, claimant
from xfq.api.deps import CitizenDep, ContainerDep, IdempotencyKey
from xfq.api.schemas import (
    PROBLEM_RESPONSES,
    CampaignOut,
    ClaimIn,
    ClaimOut,
    TillCodeOut,
    WalletOut,
    campaign_out,
    voucher_out,
)
from xfq.domain.errors import UnknownObject
from xfq.domain.till_code import DEFAULT_TTL, issue_code
from xfq.services.wallet import wallet

router = APIRouter(prefix="/v1", tags=["citizens"], responses=PROBLEM_RESPONSES)
VoucherId = Annotated[str, Path(min_length=1, max_length=64)]
ClaimPassHeader = Annotated[
    str | None,
    Header(
        alias="Claim-Pass",
        max_length=512,
        description="A claim pass of the type's round, in place of the Authorization header",
    ),
]


@router.get("/campaign", response_model=CampaignOut)
async def get_campaign(container: ContainerDep) -> CampaignOut:
    """The running campaign with each voucher type's remaining stock (public)."""
    campaign, engine = container.running()
    return campaign_out(campaign, await stock(engine))


@router.post(
    "/claims",
    response_model=ClaimOut,
    status_code=201,
    responses={
        200: {
            "model": ClaimOut,
            "description": "Decided without issuing: sold_out, "
            "limit_reached, not_open, closed, not_eligible",
        },
        404: {"model": ClaimOut},
        422: {"model": ClaimOut},
        429: {"description": "Rate limited; see Retry-After"},
    },
)
async def post_claim(
    body: ClaimIn,
    request: Request,
    key: IdempotencyKey,
    container: ContainerDep,
    claim_pass: ClaimPassHeader = None,
) -> JSONResponse:
    """Claim one voucher of a type. Served by a lean handler in front of this app.

    Authenticate with the bearer token, or with a claim pass of the type's round
    (`POST /v1/rounds/{round}/pass`) in the Claim-Pass header: far cheaper for the server at
    the opening second. A refused pass is a 401 with a `pass_*` code."""
    stats, headers = request.app.state.claim_stats, request.headers
    now = container.clock.now()
    citizen, pass_round = claimant(container, claim_pass, headers.get("authorization"), now)
    status, out = await claim(
        container, citizen, body.type_id, key, stats, headers.get("admission"), pass_round
    )
    return JSONResponse(out, status_code=status)


@router.get("/wallet", response_model=WalletOut)
async def get_wallet(identity: CitizenDep, container: ContainerDep) -> WalletOut:
    campaign, _ = container.running()
    entries = await read_ledger(container, wallet, campaign, identity.subject)
    return WalletOut(
        person_id=identity.subject,
        vouchers=[voucher_out(e.voucher, e.voucher_type, campaign.tz) for e in entries],
    )


@router.post(
    "/vouchers/{voucher_id}/till-code",
    response_model=TillCodeOut,
    responses={404: {"description": "No such voucher in this wallet"}},
)
async def post_till_code(
    voucher_id: VoucherId,
    identity: CitizenDep,
    container: ContainerDep,
    qr: Annotated[bool, Query(description="Include the QR code as SVG (costs ~10 ms)")] = True,
) -> TillCodeOut:
    """A short-lived signed code (and its QR) to show at the till."""
    voucher = await read_ledger(container, lambda reader: reader.voucher(voucher_id))
    if voucher is None or voucher.person_id != identity.subject:
        raise UnknownObject("no such voucher in this wallet")
    now = container.clock.now()
    code = issue_code(container.till_key, voucher.id, identity.subject, now)
    svg = segno.make(code, error="m").svg_inline(scale=4) if qr else None
    return TillCodeOut(code=code, expires_at=now + DEFAULT_TTL, qr_svg=svg)
