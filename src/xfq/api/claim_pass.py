"""Claim passes handed out over HTTP: a bearer token's worth, checked cheaply at the opening.

`POST /v1/rounds/{round}/pass` verifies the citizen's bearer token (the expensive step, spread
over the minutes before the opening) and answers a pass; the round's claims then send it as the
`Claim-Pass` header instead of `Authorization` (`xfq.api.auth.claim_pass` reads it). The
bearer token keeps working for claims as before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from xfq.api.claiming import citizen_of
from xfq.api.deps import CitizenOnceDep, ContainerDep
from xfq.api.schemas import PROBLEM_RESPONSES
from xfq.domain.claim_pass import expiry, issue_pass, issuing_refusal
from xfq.domain.errors import XfqError

router = APIRouter(prefix="/v1/rounds", tags=["citizens"], responses=PROBLEM_RESPONSES)
RoundId = Annotated[str, Path(min_length=1, max_length=64)]


class PassNotAvailable(XfqError):
    code = "pass_not_available"


class PassOut(BaseModel):
    round_id: str
    person_id: str
    token: str = Field(description="Send as the Claim-Pass header of this round's claims")
    expires_at: datetime
    eligible: bool = Field(description="Whether the round's eligibility rules let you claim")
    reason: str | None = Field(description="Why not, when not eligible")


@router.post("/{round_id}/pass", response_model=PassOut)
async def post_pass(
    round_id: RoundId, identity: CitizenOnceDep, container: ContainerDep
) -> PassOut:
    """A claim pass for this round, to claim with in place of the bearer token.

    Handed out from `XFQ_CLAIM_PASS_LEAD_S` before the round opens until its claim window
    closes (409 `pass_not_available` otherwise); valid until `expires_at`. A repeat gives a
    fresh pass; earlier ones stay valid until they expire.
    """
    campaign, _ = container.running()
    rnd, now = campaign.round(round_id), container.clock.now()
    refusal = issuing_refusal(rnd.opens_at, rnd.claim_closes_at, now, container.pass_rules)
    if refusal is not None:
        raise PassNotAvailable(refusal)
    citizen = citizen_of(identity)
    expires_at = expiry(rnd.claim_closes_at, now, container.pass_rules)
    reason = rnd.eligibility.refusal(citizen)
    return PassOut(
        round_id=round_id,
        person_id=identity.subject,
        token=issue_pass(container.passes, round_id, citizen, expires_at),
        expires_at=expires_at.astimezone(campaign.tz),
        eligible=reason is None,
        reason=reason,
    )
