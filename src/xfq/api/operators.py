"""What the city's operators call: import the campaign, enroll merchants, watch the grab."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel

from xfq.api.blocking import on_ledger, stock
from xfq.api.claiming import ClaimStats
from xfq.api.deps import ContainerDep, IdempotencyKey, OperatorDep, ReaderDep
from xfq.api.idempotency import once
from xfq.api.schemas import (
    KEY_ID_PATTERN,
    MERCHANT_ID_PATTERN,
    PROBLEM_RESPONSES,
    CampaignOut,
    MerchantIn,
    MerchantKeyListedOut,
    MerchantKeyOut,
    MerchantKeyRevokedOut,
    MerchantOut,
    SpecIn,
    campaign_out,
)
from xfq.bootstrap import KEY_REFRESH_S, Container, spec_digest
from xfq.domain.errors import UnknownObject
from xfq.services import operations
from xfq.services.audit import record
from xfq.services.expiry import expire

router = APIRouter(prefix="/v1/ops", tags=["operators"], responses=PROBLEM_RESPONSES)
# No merchant or key can have another id: anything else is a 422 before the ledger is asked
# (PostgreSQL refuses a NUL byte in text with an error, not an empty answer).
MerchantId = Annotated[str, Path(min_length=1, max_length=64, pattern=MERCHANT_ID_PATTERN)]
KeyId = Annotated[str, Path(min_length=1, max_length=64, pattern=KEY_ID_PATTERN)]


class StatsOut(BaseModel):
    remaining: dict[str, int]
    answers_by_code: dict[str, int]
    claims_per_second: list[tuple[int, int]]


class ExpiredOut(BaseModel):
    expired: int


@router.put("/campaign", response_model=CampaignOut)
async def put_campaign(
    body: SpecIn, request: Request, who: OperatorDep, key: IdempotencyKey, container: ContainerDep
) -> Response:
    """Import (or update) the campaign from its TOML text; refused with every problem listed."""

    def handle() -> CampaignOut:
        now = container.clock.now()
        container.upload_campaign(body.toml, "the uploaded campaign", now)
        campaign, engine = container.running()
        details = {"spec_sha256": spec_digest(body.toml)}  # what Redis names as running
        container.ledger.write(
            lambda tx: record(tx, who.subject, "campaign.imported", campaign.id, details, now)
        ).result()
        return campaign_out(campaign, engine.stock())

    return await once(request, container, who.subject, key, handle)


@router.post("/merchants", response_model=MerchantOut, status_code=201)
async def post_merchant(
    body: MerchantIn,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Enroll a merchant in a category; it can redeem once approved."""

    def handle() -> MerchantOut:
        container.running()[0].category(body.category)  # unknown category: 404 with the reason
        at = container.clock.now()
        operations.enroll_merchant(
            container.ledger, who.subject, body.id, body.name, body.category, at
        ).result()
        return MerchantOut(id=body.id, name=body.name, category=body.category, status="pending")

    return await once(request, container, who.subject, key, handle, status=201)


@router.post("/merchants/{merchant_id}/approve", response_model=MerchantKeyOut)
async def approve_merchant(
    merchant_id: MerchantId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Approve a merchant and issue its till's API key (the secret is shown only here; a retry
    with the same Idempotency-Key shows the same key rather than issuing another). Approving an
    approved merchant again issues it another key, for a second till or to rotate a key; each
    works until it is revoked."""

    def handle() -> MerchantKeyOut:
        key_id, secret = f"mk_{secrets.token_urlsafe(9)}", secrets.token_urlsafe(32)
        at = container.clock.now()
        operations.approve_merchant(
            container.ledger, who.subject, merchant_id, key_id, secret, at
        ).result()
        container.merchant_keys[key_id] = (secret.encode(), merchant_id)
        return MerchantKeyOut(merchant_id=merchant_id, key_id=key_id, secret=secret)

    return await once(request, container, who.subject, key, handle)


@router.get(
    "/merchants/{merchant_id}/keys",
    response_model=list[MerchantKeyListedOut],
    responses={404: {"description": "No such merchant"}},
)
async def list_merchant_keys(
    merchant_id: MerchantId, _: ReaderDep, container: ContainerDep
) -> list[MerchantKeyListedOut]:
    """A merchant's API keys, oldest first, with when each was issued and revoked (never the
    secrets): which key to revoke when a till's key is lost or leaked."""
    return await on_ledger(container, _merchant_keys, container, merchant_id)


def _merchant_keys(container: Container, merchant_id: str) -> list[MerchantKeyListedOut]:
    if container.ledger.reader().merchant(merchant_id) is None:
        raise UnknownObject(f"no merchant {merchant_id}")
    return [
        MerchantKeyListedOut(
            key_id=k.key_id,
            created_at=k.created_at.astimezone(UTC),
            revoked_at=None if k.revoked_at is None else k.revoked_at.astimezone(UTC),
        )
        for k in container.ledger.keys_of_merchant(merchant_id)
    ]


@router.post(
    "/merchants/{merchant_id}/keys/{key_id}/revoke",
    response_model=MerchantKeyRevokedOut,
    responses={404: {"description": "No such merchant, or the key is not one of its keys"}},
)
async def revoke_merchant_key(
    merchant_id: MerchantId,
    key_id: KeyId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Revoke one API key of a merchant (a till's key lost or leaked), audited. Requests signed
    with it get 401 `unknown_key`: at once from the worker process that answered, and from every
    worker at most `refused_everywhere_within_s` (1 s) after this answer. The merchant's other
    keys keep working; to rotate, approve the merchant again for a new key, then revoke the old
    one. Revoking a revoked key answers its first revocation and changes nothing."""

    def handle() -> MerchantKeyRevokedOut:
        at = container.clock.now()
        revoked_at = operations.revoke_merchant_key(
            container.ledger, who.subject, merchant_id, key_id, at
        ).result()
        container.forget_key(key_id)
        return MerchantKeyRevokedOut(
            merchant_id=merchant_id,
            key_id=key_id,
            revoked_at=revoked_at.astimezone(UTC),
            refused_everywhere_within_s=KEY_REFRESH_S,
        )

    return await once(request, container, who.subject, key, handle)


@router.post("/merchants/{merchant_id}/suspend", response_model=MerchantOut)
async def suspend_merchant(
    merchant_id: MerchantId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Stop a merchant redeeming (it can still refund earlier redemptions)."""

    return await _status_change(merchant_id, "suspended", request, who.subject, key, container)


@router.post("/merchants/{merchant_id}/reinstate", response_model=MerchantOut)
async def reinstate_merchant(
    merchant_id: MerchantId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Let a suspended merchant redeem again with its existing keys."""
    return await _status_change(merchant_id, "enrolled", request, who.subject, key, container)


async def _status_change(
    merchant_id: str, status: str, request: Request, actor: str, key: str, container: Container
) -> Response:
    def handle() -> MerchantOut:
        at = container.clock.now()
        operations.set_merchant_status(container.ledger, actor, merchant_id, status, at).result()
        m = next(m for m in container.ledger.merchants() if m.id == merchant_id)
        return MerchantOut(id=m.id, name=m.name, category=m.category, status=m.status)

    return await once(request, container, actor, key, handle)


RoundId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("/rounds/{round_id}/open", response_model=CampaignOut)
async def open_round(
    round_id: RoundId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Open a round for claims now, before its planned opening."""
    return await _move(round_id, "open", request, who.subject, key, container)


@router.post("/rounds/{round_id}/cancel", response_model=CampaignOut)
async def cancel_round(
    round_id: RoundId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Stop claims of a round from now (vouchers already issued stay valid)."""
    return await _move(round_id, "cancel", request, who.subject, key, container)


async def _move(
    round_id: str,
    action: str,
    request: Request,
    operator_id: str,
    key: str,
    container: Container,
) -> Response:
    def handle() -> CampaignOut:
        campaign = container.move_window(round_id, action, operator_id)
        return campaign_out(campaign, container.running()[1].stock())

    return await once(request, container, operator_id, key, handle)


@router.get("/merchants", response_model=list[MerchantOut])
async def list_merchants(_: ReaderDep, container: ContainerDep) -> list[MerchantOut]:
    merchants = await on_ledger(container, container.ledger.merchants)
    return [
        MerchantOut(id=m.id, name=m.name, category=m.category, status=m.status) for m in merchants
    ]


@router.get("/stats", response_model=StatsOut)
async def get_stats(request: Request, _: ReaderDep, container: ContainerDep) -> StatsOut:
    """Remaining stock per type, answers by code, claims per second (last ten minutes)."""
    engine = container.running()[1]
    stats: ClaimStats = request.app.state.claim_stats
    return StatsOut(
        remaining=await stock(engine),
        answers_by_code=dict(stats.by_code),
        claims_per_second=sorted(stats.per_second.items()),
    )


@router.post("/expire", response_model=ExpiredOut)
async def post_expire(_: OperatorDep, container: ContainerDep) -> ExpiredOut:
    """Expire every voucher whose validity has ended (idempotent)."""
    count = await asyncio.wrap_future(expire(container.ledger, container.clock.now()))
    return ExpiredOut(expired=count)
