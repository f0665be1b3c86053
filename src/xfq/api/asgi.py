"""The app as worker processes build it: `xfq serve --server granian` imports `create`.

Each worker builds its own container from the environment (XFQ_*, filled by `xfq serve`
before the workers start). Several workers need the Redis engine: an embedded engine decides
in one process only (its lock file refuses a second).
"""

from __future__ import annotations

import atexit
import logging.config
from typing import Any

from xfq.api.app import create_app
from xfq.api.observability import log_config
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.housekeeping import Housekeeper


def create() -> Any:
    logging.config.dictConfig(log_config())
    container = build(Settings())
    # Every worker runs the jobs: expiry is idempotent and a rollover is recorded once in the
    # ledger, so only the worker that recorded it adds the stock.
    jobs = Housekeeper(container)
    jobs.start()

    def shutdown() -> None:
        jobs.stop()
        container.close()

    atexit.register(shutdown)
    return create_app(container)
