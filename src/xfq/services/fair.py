"""Fair issuance needs an engine that enforces it; others are refused with a clear reason."""

from __future__ import annotations

from xfq.domain.errors import XfqError
from xfq.ports import FairClaimEngine


class EngineUnsupported(XfqError):
    code = "engine_unsupported"


def fair_engine(engine: object, what: str) -> FairClaimEngine:
    """`engine` as one that enforces fair issuance, or `EngineUnsupported` naming `what`."""
    if not isinstance(engine, FairClaimEngine):
        raise EngineUnsupported(
            f"{what} needs a claim engine that enforces fair issuance;"
            f" {type(engine).__name__} does not (yet)"
        )
    return engine
