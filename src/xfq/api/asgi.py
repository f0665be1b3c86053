"""The app as worker processes build it: `xfq serve --workers N` imports `create` (ASGI) or
`create_rsgi` (granian's RSGI).

Each worker builds its own container from the environment (XFQ_*, filled by `xfq serve`
before the workers start). Several workers need the Redis engine: an embedded engine decides
in one process only (its lock file refuses a second).
"""

from __future__ import annotations

import ctypes
import logging.config
import signal
from collections.abc import Callable
from typing import Any

from xfq.api.app import create_app
from xfq.api.claiming import ClaimFront
from xfq.api.observability import log_config
from xfq.api.rsgi import RsgiApp
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.gc_policy import tune_for_serving
from xfq.housekeeping import Housekeeper

_PR_SET_PDEATHSIG = 1


def create() -> Any:
    """The ASGI app of one worker (`--server granian-asgi`, `--server uvicorn`)."""
    app, shutdown = _worker()
    return _closing_on_shutdown(app, shutdown)


def create_rsgi() -> RsgiApp:
    """The RSGI app of one granian worker (`--server granian`)."""
    app, shutdown = _worker()
    assert isinstance(app, ClaimFront)
    return RsgiApp(app, shutdown)


def _worker() -> tuple[Any, Callable[[], None]]:
    _end_with_parent()
    logging.config.dictConfig(log_config())
    container = build(Settings())
    # Every worker runs the jobs: expiry is idempotent and a rollover is recorded once in the
    # ledger, so only the worker that recorded it adds the stock.
    jobs = Housekeeper(container)
    jobs.start()

    def shutdown() -> None:
        jobs.stop()
        container.close()

    app = create_app(container)
    tune_for_serving()
    return app, shutdown


def _closing_on_shutdown(app: Any, shutdown: Callable[[], None]) -> Any:
    """Close the container when the server ends the ASGI lifespan (a clean stop)."""

    async def closing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                shutdown()
            await send(message)

        await app(scope, receive, sending)

    return closing


def _end_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the server process that forked it dies, so no worker
    outlives its server (granian's own stop reaches them only through the parent)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the server's own stop must do
        pass
