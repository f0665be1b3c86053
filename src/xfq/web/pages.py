"""The three web pages, server-rendered: citizen wallet `/`, merchant checkout `/merchant`,
operator dashboard `/ops` (with `/ops/events`, live numbers by server-sent events).

Wire them into the API app with `install(app)`: it includes `router` and serves the static
files (CSS, the page script and a vendored htmx) from this package; nothing is fetched from
the network at run time and there is no front-end build step.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from xfq.web import checkout, dashboard, fraud_review, merchant_keys, report_page, wallet
from xfq.web.common import STATIC_DIR
from xfq.web.dashboard import LiveSettings

router = APIRouter(include_in_schema=False)
router.include_router(wallet.router)
router.include_router(checkout.router)
router.include_router(dashboard.router)
router.include_router(fraud_review.router)
router.include_router(merchant_keys.router)
router.include_router(report_page.router)


def install(app: FastAPI, *, live_interval_s: float = 1.0, live_max_events: int = 120) -> None:
    """Add the pages and their static files to `app` (the FastAPI app, not `ClaimFront`).

    Idempotent, so a test may call it on an app that already has the pages.
    """
    if getattr(app.state, "xfq_web_live", None) is not None:
        return
    assert live_interval_s > 0 and live_max_events > 0
    app.state.xfq_web_live = LiveSettings(live_interval_s, live_max_events)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
