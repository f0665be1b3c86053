"""The assisted channel: staff at service desks claim from a type's reserve for a person whose
ID they checked, and print the voucher on paper with a QR code that tills accept.

The paper code is the till code (`domain/till_code.py`) signed to live until the voucher's
validity ends instead of 90 seconds: a till reads it like any other, and the voucher is still
redeemed at most once.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Annotated

import segno
from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from xfq.api.blocking import read_ledger
from xfq.api.deps import ContainerDep, DeskDep, IdempotencyKey
from xfq.api.schemas import PROBLEM_RESPONSES, ClaimOut, voucher_out
from xfq.bootstrap import Container
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.errors import IdempotencyConflict, UnknownObject, XfqError
from xfq.domain.till_code import issue_code
from xfq.domain.voucher import VoucherState
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.services.fair import fair_engine

router = APIRouter(prefix="/v1/desk", tags=["assisted channel"], responses=PROBLEM_RESPONSES)
VoucherId = Annotated[str, Path(min_length=1, max_length=64)]
PersonId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class DeskClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    person_id: PersonId
    type_id: str = Field(min_length=1, max_length=64)
    residency: Annotated[Residency, Field(strict=False)] = Field(
        description="As read from the person's ID document"
    )
    id_checked: bool = Field(description="Staff confirm they checked the person's ID")


class PaperIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    person_id: PersonId


class PaperOut(BaseModel):
    voucher_id: str
    code: str
    expires_at: datetime
    qr_svg: str


@router.post(
    "/claims",
    response_model=ClaimOut,
    status_code=201,
    responses={200: {"model": ClaimOut, "description": "Decided without issuing"}},
)
async def post_desk_claim(
    body: DeskClaimIn, staff: DeskDep, key: IdempotencyKey, container: ContainerDep
) -> JSONResponse:
    """Claim one voucher from the type's assisted reserve for the person at the desk."""
    if not body.id_checked:
        raise XfqError("check the person's ID document first (id_checked must be true)")
    campaign, _ = container.running()
    citizen = Citizen(body.person_id, body.residency, in_city=True)  # they stand at a desk here
    # A non-ASCII prefix: a citizen's own (ASCII) claim keys can never equal a desk's.
    request = ClaimRequest(citizen, body.type_id, f"窗口:{staff.subject}:{key}")
    answer = await _decide(container, request)
    out = ClaimOut(code=answer.code.value, reason=answer.reason, remaining=answer.remaining)
    if answer.voucher is not None:
        vtype = campaign.voucher_type(answer.voucher.type_id)[1]
        out.voucher = voucher_out(answer.voucher, vtype, campaign.tz)
    status = 201 if answer.code is ClaimCode.ISSUED else 200
    return JSONResponse(out.model_dump(mode="json"), status_code=status)


async def _decide(container: Container, request: ClaimRequest) -> ClaimAnswer:
    engine = fair_engine(container.running()[1], "the assisted channel")
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[ClaimAnswer | BaseException] = loop.create_future()
    loop_thread = threading.get_ident()

    def reply(answer: ClaimAnswer | BaseException) -> None:
        if threading.get_ident() == loop_thread:
            answered.set_result(answer)
        else:
            loop.call_soon_threadsafe(answered.set_result, answer)

    engine.submit_assisted(request, container.clock.now(), reply)
    answer = await answered
    if isinstance(answer, BaseException):
        raise answer
    if answer.code is ClaimCode.IDEMPOTENCY_CONFLICT:
        raise IdempotencyConflict(answer.reason)
    if answer.code is ClaimCode.UNKNOWN_TYPE:
        raise UnknownObject(answer.reason)
    return answer


@router.post("/vouchers/{voucher_id}/paper", response_model=PaperOut)
async def post_paper(
    voucher_id: VoucherId, body: PaperIn, staff: DeskDep, container: ContainerDep
) -> PaperOut:
    """A printable code and QR for a person's voucher, valid until the voucher's validity ends."""
    voucher = await read_ledger(container, lambda reader: reader.voucher(voucher_id))
    if voucher is None or voucher.person_id != body.person_id:
        raise UnknownObject("no such voucher for this person")
    now = container.clock.now()
    if voucher.state is not VoucherState.ISSUED or now >= voucher.valid_until:
        raise XfqError(f"voucher {voucher_id} is {voucher.state}, not usable: nothing to print")
    code = issue_code(
        container.till_key, voucher.id, voucher.person_id, now, voucher.valid_until - now
    )
    svg = segno.make(code, error="m").svg_inline(scale=4)
    return PaperOut(voucher_id=voucher.id, code=code, expires_at=voucher.valid_until, qr_svg=svg)
