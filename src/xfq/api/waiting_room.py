"""A grab round's waiting room over HTTP: join, see one's place, get an admission token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from xfq.api.deps import CitizenDep, ContainerDep
from xfq.api.schemas import PROBLEM_RESPONSES
from xfq.bootstrap import Container
from xfq.domain.errors import UnknownObject
from xfq.services.waiting_room import Standing, WaitingRooms

router = APIRouter(prefix="/v1/rounds", tags=["citizens"], responses=PROBLEM_RESPONSES)
RoundId = Annotated[str, Path(min_length=1, max_length=64)]


class StandingOut(BaseModel):
    round_id: str
    opens_at: datetime
    place: int | None = Field(description="None until the opening second draws the early order")
    ahead: int | None = Field(description="People before you still waiting")
    admitted: bool
    token: str | None = Field(description="Send as the Admission header of one claim")
    token_expires_at: datetime | None


def _rooms(container: Container) -> WaitingRooms:
    container.running()
    if container.waiting is None:
        raise UnknownObject("no round of this campaign has a waiting room")
    return container.waiting


def _out(standing: Standing) -> StandingOut:
    place = standing.place
    return StandingOut(
        round_id=standing.round_id,
        opens_at=standing.opens_at,
        place=place.place,
        ahead=place.ahead,
        admitted=place.admitted,
        token=standing.token,
        token_expires_at=standing.token_expires_at,
    )


@router.post("/{round_id}/waiting-room", response_model=StandingOut)
async def join(round_id: RoundId, identity: CitizenDep, container: ContainerDep) -> StandingOut:
    """Join the queue (a repeat keeps your place)."""
    rooms = _rooms(container)
    return _out(rooms.join(round_id, identity.subject, container.clock.now()))


@router.get("/{round_id}/waiting-room", response_model=StandingOut)
async def standing(round_id: RoundId, identity: CitizenDep, container: ContainerDep) -> StandingOut:
    """Your place; once admitted, a fresh token good for one claim."""
    rooms = _rooms(container)
    return _out(rooms.standing(round_id, identity.subject, container.clock.now()))
