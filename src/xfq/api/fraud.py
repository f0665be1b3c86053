"""The operators' review queue of cash-out fraud flags: scan, list, confirm, dismiss."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from xfq.adapters.sql.fraud import SqlFraudStore, StoredFlag, get_flag, list_flags
from xfq.api.blocking import on_ledger
from xfq.api.deps import ContainerDep, IdempotencyKey, OperatorDep, ReaderDep
from xfq.api.idempotency import once
from xfq.api.schemas import PROBLEM_RESPONSES
from xfq.bootstrap import Container
from xfq.domain.errors import UnknownObject
from xfq.domain.fraud import FlagStatus
from xfq.services.fraud import Review, review_unit, run_scan

router = APIRouter(prefix="/v1/ops/fraud", tags=["fraud"], responses=PROBLEM_RESPONSES)
FlagId = Annotated[str, Path(min_length=1, max_length=64)]


class FlagOut(BaseModel):
    id: str
    rule: str
    merchant_id: str
    person_id: str | None
    redemption_ids: list[str]
    evidence: dict[str, Any]
    explanation: str
    found_at: datetime
    status: str
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_reason: str | None


class ScanOut(BaseModel):
    flags: int
    new: int
    merchants: int


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")
    suspend_merchant: bool = False


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


class ReviewOut(BaseModel):
    flag_id: str
    status: str
    merchant_id: str
    merchant_suspended: bool


def flag_out(f: StoredFlag) -> FlagOut:
    return FlagOut(
        id=f.id,
        rule=f.rule.value,
        merchant_id=f.merchant_id,
        person_id=f.person_id,
        redemption_ids=f.redemption_ids,
        evidence=f.evidence,
        explanation=f.explanation,
        found_at=f.found_at,
        status=f.status.value,
        reviewed_by=f.reviewed_by,
        reviewed_at=f.reviewed_at,
        review_reason=f.review_reason,
    )


@router.post("/scan", response_model=ScanOut)
async def scan(
    request: Request, who: OperatorDep, key: IdempotencyKey, container: ContainerDep
) -> Response:
    """Run every rule over the ledger; flags already stored are not added again."""

    def handle() -> ScanOut:
        result = run_scan(SqlFraudStore(container.ledger.engine), container.clock.now())
        merchants = len({f.merchant_id for f in result.flags})
        return ScanOut(flags=len(result.flags), new=result.new, merchants=merchants)

    return await once(request, container, who.subject, key, handle)


@router.get("/flags", response_model=list[FlagOut])
async def flags(
    _: ReaderDep,
    container: ContainerDep,
    status: Annotated[FlagStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[FlagOut]:
    """Flags by rule and merchant; `status=open` is the review queue."""
    found = await on_ledger(container, list_flags, container.ledger.engine, status, limit)
    return [flag_out(f) for f in found]


@router.get("/flags/{flag_id}", response_model=FlagOut)
async def flag(flag_id: FlagId, _: ReaderDep, container: ContainerDep) -> FlagOut:
    found = await on_ledger(container, get_flag, container.ledger.engine, flag_id)
    if found is None:
        raise UnknownObject(f"no fraud flag {flag_id}")
    return flag_out(found)


@router.post("/flags/{flag_id}/confirm", response_model=ReviewOut)
async def confirm(
    flag_id: FlagId,
    body: ConfirmIn,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Confirm a flag; `suspend_merchant` also stops the merchant redeeming (its pending
    settlement is then held)."""
    review = Review(flag_id, FlagStatus.CONFIRMED, who.subject, body.reason, body.suspend_merchant)
    return await _review(review, request, key, container)


@router.post("/flags/{flag_id}/dismiss", response_model=ReviewOut)
async def dismiss(
    flag_id: FlagId,
    body: DismissIn,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Dismiss a flag, saying why (kept in the audit trail)."""
    review = Review(flag_id, FlagStatus.DISMISSED, who.subject, body.reason)
    return await _review(review, request, key, container)


async def _review(review: Review, request: Request, key: str, container: Container) -> Response:
    def handle() -> ReviewOut:
        answer = container.ledger.write(review_unit(review, container.clock.now())).result()
        return ReviewOut(
            flag_id=answer.flag_id,
            status=answer.status.value,
            merchant_id=answer.merchant_id,
            merchant_suspended=answer.merchant_suspended,
        )

    return await once(request, container, review.reviewer, key, handle)
