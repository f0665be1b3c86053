"""Household wallets over HTTP: a head of household declares its members."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from xfq.adapters.sql.lottery import SqlHouseholdStore
from xfq.api.blocking import on_ledger, one_at_a_time
from xfq.api.deps import CitizenDep, ContainerDep, IdempotencyKey
from xfq.api.schemas import PROBLEM_RESPONSES
from xfq.domain.errors import UnknownObject
from xfq.services.fair import fair_engine
from xfq.services.households import MAX_HOUSEHOLD, declare_household

router = APIRouter(prefix="/v1/household", tags=["citizens"], responses=PROBLEM_RESPONSES)


class HouseholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    members: list[str] = Field(min_length=1, max_length=MAX_HOUSEHOLD - 1)


class HouseholdOut(BaseModel):
    head_id: str
    members: list[str] = Field(description="Everyone in the household, the head included")


@router.post("", response_model=HouseholdOut)
async def post_household(
    body: HouseholdIn, identity: CitizenDep, key: IdempotencyKey, container: ContainerDep
) -> HouseholdOut:
    """Declare (or add to) the caller's household; membership is final. A repeat changes nothing."""
    engine = fair_engine(container.running()[1], "a household")
    store = SqlHouseholdStore(container.ledger.engine)
    now = container.clock.now()
    members = await one_at_a_time(
        container, declare_household, store, engine, identity.subject, body.members, now
    )
    return HouseholdOut(head_id=identity.subject, members=members)


@router.get("", response_model=HouseholdOut)
async def get_household(identity: CitizenDep, container: ContainerDep) -> HouseholdOut:
    return await on_ledger(
        container, _household, SqlHouseholdStore(container.ledger.engine), identity.subject
    )


def _household(store: SqlHouseholdStore, person_id: str) -> HouseholdOut:
    head = store.households().get(person_id)
    if head is None:
        raise UnknownObject("you are not in a declared household")
    return HouseholdOut(head_id=head, members=store.members(head))
