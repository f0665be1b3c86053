"""The audit trail for auditors (and operators): read-only pages of entries, the chain's check,
and the daily digest a city publishes."""

from __future__ import annotations

import json
from datetime import UTC, date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from xfq.adapters.sql.audit import iter_entries, page
from xfq.api.blocking import on_ledger
from xfq.api.deps import ContainerDep, ReaderDep
from xfq.api.schemas import PROBLEM_RESPONSES, Day
from xfq.bootstrap import Container
from xfq.domain.audit import AuditEntry, daily_digest, verify_chain

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)


class AuditEntryOut(BaseModel):
    seq: int
    at_us: int
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    details_json: str  # exactly the text that was hashed
    prev_hash: str
    hash: str


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_after_seq: int | None  # pass as after_seq for the next page; null at the end


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    head_hash: str | None
    broken_seq: int | None
    reason: str | None


class DigestOut(BaseModel):
    date: date
    timezone: str
    first_seq: int | None
    last_seq: int | None
    count: int
    last_hash: str
    actions: dict[str, int]
    canonical: str  # the bytes to publish; equal to `xfq audit digest`


def _out(e: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        seq=e.seq,
        at_us=e.at_us,
        actor=e.actor,
        action=e.action,
        subject=e.subject,
        details=json.loads(e.details_json),
        details_json=e.details_json,
        prev_hash=e.prev_hash,
        hash=e.hash,
    )


def _whole_log(container: Container) -> list[AuditEntry]:
    return list(iter_entries(container.ledger.engine))


@router.get("/entries", response_model=AuditPageOut)
async def entries(
    _: ReaderDep,
    container: ContainerDep,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPageOut:
    """Entries in sequence order after `after_seq`."""
    found = await on_ledger(container, page, container.ledger.engine, after_seq, limit)
    following = found[-1].seq if len(found) == limit else None
    return AuditPageOut(entries=[_out(e) for e in found], next_after_seq=following)


@router.get("/verify", response_model=VerifyOut)
async def verify(_: ReaderDep, container: ContainerDep) -> VerifyOut:
    """Recompute the whole chain; where it breaks, if it does."""
    log = await on_ledger(container, _whole_log, container)
    broken = verify_chain(log)
    return VerifyOut(
        ok=broken is None,
        entries=len(log),
        head_hash=log[-1].hash if log else None,
        broken_seq=None if broken is None else broken.seq,
        reason=None if broken is None else broken.reason,
    )


@router.get("/digest/{day}", response_model=DigestOut)
async def digest(
    day: Day,
    _: ReaderDep,
    container: ContainerDep,
) -> DigestOut:
    """The day's digest, as `xfq audit digest` prints it."""
    log = await on_ledger(container, _whole_log, container)
    tz = container.campaign.tz if container.campaign is not None else UTC
    d = daily_digest(log, day, tz)
    return DigestOut(
        date=d.day,
        timezone=d.timezone,
        first_seq=d.first_seq,
        last_seq=d.last_seq,
        count=d.count,
        last_hash=d.last_hash,
        actions=d.actions,
        canonical=d.as_json(),
    )
