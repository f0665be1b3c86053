"""Settlement over HTTP: operators read and close days and roll rounds over; a merchant's till
downloads its own statement (CSV)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel

from xfq.adapters.settlement_files import day_csv, statement_csv
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.adapters.sql.settlement import SqlSettlementStore
from xfq.api.blocking import on_ledger
from xfq.api.deps import ContainerDep, IdempotencyKey, MerchantDep, OperatorDep, ReaderDep
from xfq.api.idempotency import once
from xfq.api.schemas import PROBLEM_RESPONSES, Day
from xfq.bootstrap import Container
from xfq.domain.settlement import DaySettlement
from xfq.housekeeping import apply_rollover
from xfq.services.rollover import effective_budgets
from xfq.services.settlement import close_day, day_settlement

ops_router = APIRouter(prefix="/v1/ops", tags=["operators"], responses=PROBLEM_RESPONSES)
merchant_router = APIRouter(prefix="/v1/merchant", tags=["merchants"], responses=PROBLEM_RESPONSES)


RoundId = Annotated[str, Path(min_length=1, max_length=64)]
CSV = "text/csv; charset=utf-8"
CSV_RESPONSE: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}
}


class StatementOut(BaseModel):
    merchant_id: str
    status: str  # payable | held (a suspended merchant)
    redemptions: int
    reversals: int
    discount_fen: int
    reversal_fen: int
    owed_fen: int
    payable_fen: int


class SettlementOut(BaseModel):
    day: date
    state: str  # open | closed
    closed_at: datetime | None
    owed_fen: int
    payable_fen: int
    held_fen: int
    statements: list[StatementOut]


class RolloverMoveOut(BaseModel):
    from_type_id: str
    into_type_id: str | None
    unclaimed: int
    expired: int
    value_fen: int
    added_count: int
    remainder_fen: int


class RolloverOut(BaseModel):
    from_round: str
    into_round: str
    newly_done: bool
    effective_budget_fen: int
    moves: list[RolloverMoveOut]


def _settlement_out(s: DaySettlement) -> SettlementOut:
    return SettlementOut(
        day=s.day,
        state="open" if s.closed_at is None else "closed",
        closed_at=s.closed_at,
        owed_fen=s.owed_fen,
        payable_fen=s.payable_fen,
        held_fen=s.held_fen,
        statements=[
            StatementOut(
                merchant_id=x.merchant_id,
                status="held" if x.held else "payable",
                redemptions=x.redemptions,
                reversals=x.reversals,
                discount_fen=x.discount_fen,
                reversal_fen=x.reversal_fen,
                owed_fen=x.owed_fen,
                payable_fen=x.payable_fen,
            )
            for x in s.statements
        ],
    )


def _store(container: Container) -> SqlSettlementStore:
    campaign, _ = container.running()
    return SqlSettlementStore(container.ledger.engine, campaign.tz)


async def _settlement(container: Container, day: date) -> DaySettlement:
    campaign, _ = container.running()
    return await on_ledger(container, day_settlement, _store(container), campaign, day)


def _names(container: Container) -> dict[str, str]:
    return {m.id: m.name for m in container.ledger.merchants()}


@ops_router.get("/settlements/{day}", response_model=SettlementOut)
async def get_settlement(day: Day, _: ReaderDep, container: ContainerDep) -> SettlementOut:
    """What the city owes each merchant for `day`: open (as the ledger stands) or closed."""
    return _settlement_out(await _settlement(container, day))


@ops_router.get("/settlements/{day}/csv", response_class=Response, responses=CSV_RESPONSE)
async def get_settlement_csv(day: Day, _: ReaderDep, container: ContainerDep) -> Response:
    """The day's lines and totals for finance, as `xfq settle` writes them."""
    settlement = await _settlement(container, day)
    names = await on_ledger(container, _names, container)
    tz = container.running()[0].tz
    return Response(day_csv(settlement, names, tz), media_type=CSV)


@ops_router.post("/settlements/{day}/close", response_model=SettlementOut)
async def post_close(
    day: Day, request: Request, who: OperatorDep, key: IdempotencyKey, container: ContainerDep
) -> Response:
    """Close a finished day once paid: its statement is frozen; later reversals of its
    redemptions go into the next open day. Closing a closed day returns it unchanged."""

    def handle() -> SettlementOut:
        campaign, _ = container.running()
        closing = close_day(_store(container), campaign, day, container.clock.now(), who.subject)
        return _settlement_out(closing.settlement)

    return await once(request, container, who.subject, key, handle)


@ops_router.post("/rounds/{round_id}/rollover", response_model=RolloverOut)
async def post_rollover(
    round_id: RoundId,
    request: Request,
    who: OperatorDep,
    key: IdempotencyKey,
    container: ContainerDep,
) -> Response:
    """Roll a finished round's unclaimed and expired value into the later round (once)."""
    return await once(
        request, container, who.subject, key, lambda: run_rollover(container, round_id)
    )


def run_rollover(container: Container, round_id: str) -> RolloverOut:
    campaign, _ = container.running()
    result = apply_rollover(container, round_id)
    store = SqlRolloverStore(container.ledger.engine)
    return RolloverOut(
        from_round=result.from_round,
        into_round=result.into_round,
        newly_done=result.newly_done,
        effective_budget_fen=effective_budgets(campaign, store)[result.into_round],
        moves=[
            RolloverMoveOut(
                from_type_id=m.from_type_id,
                into_type_id=m.into_type_id,
                unclaimed=m.unclaimed,
                expired=m.expired,
                value_fen=m.value_fen,
                added_count=m.added_count,
                remainder_fen=m.remainder_fen,
            )
            for m in result.moves
        ],
    )


@merchant_router.get("/statements/{day}", response_class=Response, responses=CSV_RESPONSE)
async def get_statement(day: Day, merchant_id: MerchantDep, container: ContainerDep) -> Response:
    """This merchant's settlement statement of `day` (CSV): its lines and its total."""
    settlement = await _settlement(container, day)
    tz = container.running()[0].tz
    statement = settlement.statement(merchant_id)
    names = await on_ledger(container, _names, container)
    return Response(statement_csv(statement, names, tz), media_type=CSV)
