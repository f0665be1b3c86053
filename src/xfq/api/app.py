"""The ASGI application: FastAPI routers per audience behind the lean claim handler."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from xfq import web
from xfq.api import (
    audit,
    citizens,
    claim_pass,
    desk,
    dev,
    fraud,
    households,
    lottery,
    merchants,
    observability,
    openapi,
    operators,
    problems,
    settlements,
    waiting_room,
)
from xfq.api.admission import Admission
from xfq.api.body_limit import BodyLimit
from xfq.api.claiming import ClaimFront, ClaimStats
from xfq.api.ratelimit import Buckets, RateLimiter
from xfq.bootstrap import Container


def create_app(container: Container) -> Any:
    """An ASGI app; `app.state.container` of the inner FastAPI app holds the wiring."""
    s = container.settings
    app = FastAPI(
        title="xfq",
        version="0.1.0",
        description="Consumption-voucher campaigns: grab, wallet, checkout, refunds, operations.",
    )
    problems.install(app)
    openapi.install(app)
    app.state.container = container
    app.state.claim_stats = stats = ClaimStats()
    app.state.metrics = metrics = observability.Metrics()
    metrics.gauge(
        "xfq_ledger_pending_writes",
        "Units of work queued for the ledger's writer, not yet committed",
        container.ledger.pending_writes,
    )
    app.include_router(observability.router)
    app.include_router(citizens.router)
    app.include_router(merchants.router)
    app.include_router(operators.router)
    app.include_router(settlements.ops_router)
    app.include_router(settlements.merchant_router)
    app.include_router(audit.router)
    app.include_router(fraud.router)
    app.include_router(lottery.router)  # fair issuance: lottery rounds, households
    app.include_router(lottery.ops_router)
    app.include_router(households.router)
    app.include_router(desk.router)  # the assisted channel's reserve, paper vouchers
    app.include_router(waiting_room.router)
    app.include_router(claim_pass.router)
    if container.dev_issuer is not None:
        app.include_router(dev.router)
    limiter = RateLimiter(
        Buckets(s.claim_rate_per_person_per_s, s.claim_burst_per_person),
        Buckets(s.claim_rate_per_address_per_s, s.claim_burst_per_address),
    )
    app.state.limiter = limiter
    app.state.admission = admission = Admission(s.claim_max_in_flight, s.claim_max_wait_ms / 1000)
    metrics.gauge(
        "xfq_claims_in_flight",
        "Claims this process is deciding, not answered yet (admission control bounds them)",
        lambda: admission.in_flight,
    )
    web.install(app)
    app.add_middleware(BodyLimit, max_bytes=s.max_body_bytes)
    return ClaimFront(app, container, limiter, stats, metrics, admission)
