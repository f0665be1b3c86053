"""Deciding one claim: window, eligibility, limits, stock. Pure; the engine applies it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

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


class PersonCounts(NamedTuple):  # a tuple: made per claim, ~4× cheaper than a dataclass
    """Vouchers a person already holds from one round: of the type, its category, the round."""

    of_type: int = 0
    of_category: int = 0
    of_round: int = 0


class ClaimDecision(NamedTuple):
    code: ClaimCode
    reason: str = ""


# Enum members are looked up through a descriptor (~0.1 µs each); the grab decides per request.
_NOT_OPEN, _CLOSED, _NOT_ELIGIBLE = ClaimCode.NOT_OPEN, ClaimCode.CLOSED, ClaimCode.NOT_ELIGIBLE
_LIMIT_REACHED, _SOLD_OUT = ClaimCode.LIMIT_REACHED, ClaimCode.SOLD_OUT
ISSUE = ClaimDecision(ClaimCode.ISSUED)


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
        return ClaimDecision(_NOT_OPEN, f"round opens at {rnd.opens_at.isoformat()}")
    if now >= rnd.claim_closes_at:
        return ClaimDecision(_CLOSED, f"claims closed at {rnd.claim_closes_at.isoformat()}")
    refusal = rnd.eligibility.refusal(citizen)
    if refusal is not None:
        return ClaimDecision(_NOT_ELIGIBLE, refusal)
    limit = limit_reached(rnd, vtype, counts)
    if limit is not None:
        return ClaimDecision(_LIMIT_REACHED, limit)
    if remaining <= 0:
        return ClaimDecision(_SOLD_OUT, f"{vtype.label} is sold out")
    return ISSUE


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
