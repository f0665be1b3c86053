"""The development identity provider's login, for the demo and tests; absent in production."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from xfq.adapters.clock import RunningClock, SimulatedClock
from xfq.api.auth.tokens import Role
from xfq.api.deps import ContainerDep
from xfq.api.schemas import PROBLEM_RESPONSES
from xfq.domain.errors import UnknownObject, XfqError

router = APIRouter(prefix="/dev", tags=["development"], responses=PROBLEM_RESPONSES)


class DevLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    subject: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    role: Literal["citizen", "operator", "auditor"] = "citizen"
    residency: Literal["permanent", "work", "study", "visit"] | None = "permanent"
    in_city: bool = True


class DevTokenOut(BaseModel):
    token: str


class ClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: AwareDatetime

    @field_validator("now", mode="before")
    @classmethod
    def _text_only(cls, value: object) -> object:
        if not isinstance(value, str):  # pydantic would read a number as Unix seconds
            raise ValueError("an ISO 8601 date and time with its UTC offset")
        return value


class ClockOut(BaseModel):
    now: AwareDatetime


class ClockNotSettable(XfqError):
    code = "clock_not_settable"


@router.get("/clock", response_model=ClockOut)
async def read_clock(container: ContainerDep) -> ClockOut:
    """The time this server process reads (simulated or real)."""
    return ClockOut(now=container.clock.now())


@router.put("/clock", response_model=ClockOut)
async def set_clock(body: ClockIn, container: ContainerDep) -> ClockOut:
    """Move a simulated clock (development only: the demo plays 2022-03-05 on it)."""
    clock = container.clock
    if isinstance(clock, RunningClock):
        # Each worker process has its own clock: moving this one would split the workers.
        raise ClockNotSettable(
            "this server's simulated clock runs at real speed from XFQ_SIMULATED_START at"
            " XFQ_SIMULATED_ANCHOR, the same in every worker process; it cannot be set (restart"
            " with other values, or without XFQ_SIMULATED_ANCHOR for a clock moved by hand)"
        )
    if not isinstance(clock, SimulatedClock):
        raise ClockNotSettable("this server runs on real time; its clock cannot be set")
    clock.set(body.now)
    return ClockOut(now=clock.now())


@router.post("/token", response_model=DevTokenOut)
async def dev_token(body: DevLoginIn, container: ContainerDep) -> DevTokenOut:
    """A bearer token from the development issuer (refused unless it is enabled)."""
    if container.dev_issuer is None:
        raise UnknownObject("the development issuer is not enabled")
    token = container.dev_issuer.token(
        body.subject,
        Role(body.role),
        container.clock.now(),
        residency=body.residency,
        in_city=body.in_city,
    )
    return DevTokenOut(token=token)
