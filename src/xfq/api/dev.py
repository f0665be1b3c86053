"""The development identity provider's login, for the demo and tests; absent in production."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from xfq.api.auth.tokens import Role
from xfq.api.deps import ContainerDep
from xfq.api.schemas import PROBLEM_RESPONSES
from xfq.domain.errors import UnknownObject

router = APIRouter(prefix="/dev", tags=["development"], responses=PROBLEM_RESPONSES)


class DevLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    subject: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    role: Literal["citizen", "operator", "auditor"] = "citizen"
    residency: Literal["permanent", "work", "study", "visit"] | None = "permanent"
    in_city: bool = True


class DevTokenOut(BaseModel):
    token: str


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
