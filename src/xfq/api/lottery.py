"""Lottery rounds over HTTP: the public round page's facts, registration, the operators' steps.

Published for anyone (no token): the seed's SHA-256 once committed, the frozen list and its
hash once registration closed, the seed and `draw.json` once drawn; `xfq lottery verify`
re-runs the draw from those files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from xfq.adapters.sql.lottery import SqlHouseholdStore, SqlLotteryStore
from xfq.api.auth.tokens import Identity
from xfq.api.blocking import on_ledger, one_at_a_time
from xfq.api.claiming import citizen_of
from xfq.api.deps import CitizenDep, ContainerDep, IdempotencyKey, OperatorDep
from xfq.api.idempotency import once
from xfq.api.schemas import PROBLEM_RESPONSES
from xfq.bootstrap import Container
from xfq.domain.lottery import parse_record, registration_list
from xfq.services import lottery as service
from xfq.services.fair import fair_engine
from xfq.services.lottery import LotteryRefused

router = APIRouter(prefix="/v1/lottery", tags=["lottery"], responses=PROBLEM_RESPONSES)
ops_router = APIRouter(prefix="/v1/ops/lottery", tags=["operators"], responses=PROBLEM_RESPONSES)
RoundId = Annotated[str, Path(min_length=1, max_length=64)]


class LotteryOut(BaseModel):
    round_id: str
    types: list[str]
    registration_opens_at: datetime
    registration_closes_at: datetime
    draw_at: datetime
    max_wins_per_week: int | None
    max_wins_per_campaign: int | None
    registrations: int
    seed_sha256: str | None = Field(description="Published before registration closes")
    registrations_sha256: str | None = Field(description="Published when the list is frozen")
    seed: str | None = Field(description="Revealed at the draw")
    winners: int | None
    draw_file: str | None
    registrations_file: str | None


class RegistrationByType(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type_id: str = Field(min_length=1, max_length=64)


class RegistrationByCategory(BaseModel):
    """Every type of the category in the round."""

    model_config = ConfigDict(extra="forbid", strict=True)
    category: str = Field(min_length=1, max_length=64)


class RegistrationOut(BaseModel):
    round_id: str
    person_id: str
    registered: list[str]
    won: list[str] | None = Field(description="None until the draw")


def _store(container: Container) -> SqlLotteryStore:
    return SqlLotteryStore(container.ledger.engine)


def _page(container: Container, round_id: str) -> LotteryOut:
    campaign, _ = container.running()
    rnd, rules = service.lottery_round(campaign, round_id)
    state = _store(container).state(round_id)
    drawn = state is not None and state.draw_json is not None
    frozen = state is not None and state.frozen_at is not None
    base = f"/v1/lottery/{round_id}"
    return LotteryOut(
        round_id=round_id,
        types=[t.id for t in rnd.types],
        registration_opens_at=rules.registration_opens_at,
        registration_closes_at=rules.registration_closes_at,
        draw_at=rules.draw_at,
        max_wins_per_week=rules.max_wins_per_week,
        max_wins_per_campaign=rules.max_wins_per_campaign,
        registrations=0 if state is None else state.registrations,
        seed_sha256=None if state is None else state.seed_sha256,
        registrations_sha256=None if state is None else state.registrations_sha256,
        seed=state.seed_hex if drawn and state is not None else None,
        winners=(
            len(parse_record(state.draw_json).winners)
            if state is not None and state.draw_json is not None
            else None
        ),
        draw_file=f"{base}/draw.json" if drawn else None,
        registrations_file=f"{base}/registrations.txt" if frozen else None,
    )


@router.get("/{round_id}", response_model=LotteryOut)
async def get_lottery(round_id: RoundId, container: ContainerDep) -> LotteryOut:
    """The round page's facts: windows, caps, and every hash published so far (public)."""
    return await on_ledger(container, _page, container, round_id)


@router.get("/{round_id}/registrations.txt", response_class=Response)
async def get_registrations(round_id: RoundId, container: ContainerDep) -> Response:
    """The frozen registration list, once registration has closed (public)."""
    campaign, _ = container.running()
    service.lottery_round(campaign, round_id)
    listed = await on_ledger(container, _frozen_list, _store(container), round_id)
    return Response(listed, media_type="text/plain; charset=utf-8")


def _frozen_list(store: SqlLotteryStore, round_id: str) -> bytes:
    state = store.state(round_id)
    if state is None or state.frozen_at is None:
        raise LotteryRefused(f"the registration list of round {round_id} is not frozen yet")
    return registration_list(store.registrations(round_id))


@router.get("/{round_id}/draw.json", response_class=Response)
async def get_draw(round_id: RoundId, container: ContainerDep) -> Response:
    """The draw's inputs, seed and winners, once drawn (public)."""
    campaign, _ = container.running()
    service.lottery_round(campaign, round_id)
    state = await on_ledger(container, _store(container).state, round_id)
    if state is None or state.draw_json is None:
        raise LotteryRefused(f"round {round_id} has not been drawn yet")
    return Response(state.draw_json, media_type="application/json")


@router.post(
    "/{round_id}/registrations",
    response_model=RegistrationOut,
    status_code=201,
    responses={200: {"model": RegistrationOut, "description": "Registered already"}},
)
async def post_registration(
    round_id: RoundId,
    body: RegistrationByType | RegistrationByCategory,
    identity: CitizenDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> JSONResponse:
    """Register for the draw of one voucher type; eligibility is checked now. A repeat changes
    nothing (200), whatever its Idempotency-Key."""
    new, out = await one_at_a_time(container, _register, container, round_id, body, identity)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if new else 200)


def _register(
    container: Container,
    round_id: str,
    body: RegistrationByType | RegistrationByCategory,
    identity: Identity,
) -> tuple[bool, RegistrationOut]:
    """Whether newly registered, and what the person registered for now."""
    campaign, _ = container.running()
    store = _store(container)
    citizen, now = citizen_of(identity), container.clock.now()
    if isinstance(body, RegistrationByType):
        new = service.register(store, campaign, citizen, round_id, body.type_id, now)
    else:
        new = bool(
            service.register_category(store, campaign, citizen, round_id, body.category, now)
        )
    return new, _mine(container, round_id, identity.subject)


@router.get("/{round_id}/me", response_model=RegistrationOut)
async def get_mine(
    round_id: RoundId, identity: CitizenDep, container: ContainerDep
) -> RegistrationOut:
    """What this person registered for, and after the draw what they won."""
    campaign, _ = container.running()
    service.lottery_round(campaign, round_id)
    return await on_ledger(container, _mine, container, round_id, identity.subject)


def _mine(container: Container, round_id: str, person_id: str) -> RegistrationOut:
    store = _store(container)
    registered = [r.type_id for r in store.registrations(round_id, person_id)]
    state = store.state(round_id)
    won = None
    if state is not None and state.draw_json is not None:
        winners = parse_record(state.draw_json).winners
        won = sorted(w.type_id for w in winners if w.person_id == person_id)
    return RegistrationOut(round_id=round_id, person_id=person_id, registered=registered, won=won)


class DrawOut(BaseModel):
    round_id: str
    winners: int
    issued_now: int
    seed: str
    seed_sha256: str
    registrations_sha256: str


@ops_router.post("/{round_id}/commit", response_model=LotteryOut)
async def post_commit(
    round_id: RoundId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Choose the secret seed and publish its SHA-256 (before registration closes; once)."""

    def handle() -> LotteryOut:
        campaign, _ = container.running()
        service.commit_seed(
            _store(container), campaign, round_id, who.subject, container.clock.now()
        )
        return _page(container, round_id)

    return await once(request, container, who.subject, key, handle, serial=True)


@ops_router.post("/{round_id}/freeze", response_model=LotteryOut)
async def post_freeze(
    round_id: RoundId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Freeze the registration list and publish its hash (after registration closed)."""

    def handle() -> LotteryOut:
        campaign, _ = container.running()
        service.freeze(_store(container), campaign, round_id, container.clock.now())
        return _page(container, round_id)

    return await once(request, container, who.subject, key, handle, serial=True)


@ops_router.post("/{round_id}/draw", response_model=DrawOut)
async def post_draw(
    round_id: RoundId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Draw (at or after draw_at), reveal the seed and issue the winners' vouchers; a repeat
    issues only what a crash left missing."""

    def handle() -> DrawOut:
        campaign, engine = container.running()
        outcome = service.run_draw(
            _store(container),
            container.ledger,
            fair_engine(engine, "a lottery draw"),
            container.ids,
            campaign,
            round_id,
            container.clock.now(),
            SqlHouseholdStore(container.ledger.engine).households(),
        )
        record = outcome.record
        return DrawOut(
            round_id=round_id,
            winners=len(record.winners),
            issued_now=outcome.issued_now,
            seed=record.seed_hex,
            seed_sha256=record.seed_sha256,
            registrations_sha256=record.registrations_sha256,
        )

    return await once(request, container, who.subject, key, handle, serial=True)
