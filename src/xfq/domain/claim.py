"""Deciding one claim: window, eligibility, limits, stock. Pure; the engine applies it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from xfq.domain.campaign import Round, VoucherType
from xfq.domain.eligibility import Citizen


class ClaimCode(StrEnum):
    ISSUED = "issued"
    SOLD_OUT = "sold_out"
    LIMIT_REACHED = "limit_reached"
    NOT_OPEN = "not_open"
    CLOSED = "closed"
    NOT_ELIGIBLE = "not_eligible"
    UNKNOWN_TYPE = "unknown_type"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"


@dataclass(frozen=True)
class PersonCounts:
    """Vouchers a person already holds from one round: of the type, its category, the round."""

    of_type: int = 0
    of_category: int = 0
    of_round: int = 0


@dataclass(frozen=True)
class ClaimDecision:
    code: ClaimCode
    reason: str = ""


def decide_claim(
    rnd: Round,
    vtype: VoucherType,
    citizen: Citizen,
    now: datetime,
    remaining: int,
    counts: PersonCounts,
) -> ClaimDecision:
    """Check in the order a person would want to hear about it; stock last."""
    if now < rnd.opens_at:
        return ClaimDecision(ClaimCode.NOT_OPEN, f"round opens at {rnd.opens_at.isoformat()}")
    if now >= rnd.claim_closes_at:
        return ClaimDecision(
            ClaimCode.CLOSED, f"claims closed at {rnd.claim_closes_at.isoformat()}"
        )
    refusal = rnd.eligibility.refusal(citizen)
    if refusal is not None:
        return ClaimDecision(ClaimCode.NOT_ELIGIBLE, refusal)
    limit = limit_reached(rnd, vtype, counts)
    if limit is not None:
        return ClaimDecision(ClaimCode.LIMIT_REACHED, limit)
    if remaining <= 0:
        return ClaimDecision(ClaimCode.SOLD_OUT, f"{vtype.label} is sold out")
    return ClaimDecision(ClaimCode.ISSUED)


def limit_reached(rnd: Round, vtype: VoucherType, counts: PersonCounts) -> str | None:
    # The type's own limit; the spec fills it from the round's `limits.per_type` when unset.
    if counts.of_type >= vtype.per_person:
        return f"at most {vtype.per_person} of {vtype.label} ({vtype.category}) per person"
    per_category = rnd.limits.per_category
    if per_category is not None and counts.of_category >= per_category:
        return f"at most {per_category} voucher(s) of category {vtype.category} per person"
    per_round = rnd.limits.per_round
    if per_round is not None and counts.of_round >= per_round:
        return f"at most {per_round} voucher(s) of round {rnd.id} per person"
    return None
