"""What operators watch: a health check, Prometheus metrics, and logs as JSON lines.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR (an empty directory, the same for
all workers) before they start: each scrape then adds up every worker's counts, whichever
worker answers it (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from xfq.bootstrap import Container
from xfq.domain.claim import ClaimCode

# From well under a millisecond (answers from memory) to the seconds of an overloaded box.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


FLUSH_S = 0.5  # how stale a scrape may be: counts wait in the process at most this long


class Metrics:
    """The claim path's counters; a registry per app, so tests and apps do not share counts.

    A claim's answer is counted in plain Python numbers and handed to prometheus_client at most
    `FLUSH_S` later, on the event loop: in multiprocess mode each of its increments writes a
    memory-mapped file under a lock, ~50 µs of CPU per claim for a counter and a histogram,
    against ~1 µs here."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._claims = Counter(
            "xfq_claims", "Claim answers by code", ["code"], registry=self.registry
        )
        self.claim_seconds = Histogram(
            "xfq_claim_seconds",
            "Time from a claim request's arrival to its answer (issued: after the commit)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._shed = Counter(
            "xfq_claims_shed",
            "Claims answered 429 at once because the engine was behind (reason: in_flight or "
            "queue_age)",
            ["reason"],
            registry=self.registry,
        )
        self.unavailable = Counter(
            "xfq_storage_unavailable",
            "Requests answered 503 because the ledger or Redis was out of reach or too slow "
            "(a ledger call no thread took in time, a cut link, Redis away)",
            registry=self.registry,
        )
        # Children resolved once: labels() takes a lock and a dict lookup per call.
        self._by_code = {code.value: self._claims.labels(code.value) for code in ClaimCode}
        self._gauges: list[Gauge] = []
        self._codes: dict[str, int] = {}
        self._bounds = (*LATENCY_BUCKETS, math.inf)
        self._latency = [0] * len(self._bounds)
        self._latency_sum = 0.0
        self._flush_due = False
        self._lock = threading.Lock()

    def claim_answered(self, code: str, seconds: float) -> None:
        with self._lock:  # a scrape flushes from a thread of the route's pool
            self._codes[code] = self._codes.get(code, 0) + 1
            self._latency[bisect.bisect_left(self._bounds, seconds)] += 1  # first bound >= it
            self._latency_sum += seconds
            due, self._flush_due = self._flush_due, True
        if not due:
            try:
                asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:  # not on a loop: nothing would call it later
                self.flush()

    def flush(self) -> None:
        """Hand the counts gathered since the last flush to prometheus_client."""
        with self._lock:
            self._flush_due = False
            codes, self._codes = self._codes, {}
            latency, self._latency = self._latency, [0] * len(self._bounds)
            total, self._latency_sum = self._latency_sum, 0.0
        for code, n in codes.items():
            (self._by_code.get(code) or self._claims.labels(code)).inc(n)
        # Histogram.observe() adds one observation; these add many (its own two fields).
        buckets = self.claim_seconds._buckets
        for i, n in enumerate(latency):
            if n:
                buckets[i].inc(n)
        if any(latency):
            self.claim_seconds._sum.inc(total)

    def claim_shed(self, reason: str) -> None:
        self._shed.labels(reason).inc()

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value read at each scrape (one process only: not in multiprocess mode)."""
        if _multiprocess():
            return
        gauge = Gauge(name, help_text, registry=self.registry)
        gauge.set_function(read)
        self._gauges.append(gauge)

    def exposition(self) -> bytes:
        self.flush()  # this process's counts; other workers flush on their own loops
        if _multiprocess():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness and readiness: the ledger answers, a campaign is loaded")
def health(request: Request, response: Response) -> dict[str, Any]:
    container: Container = request.app.state.container
    checks = {"ledger": _ledger_ok(container), "campaign": container.campaign is not None}
    ok = all(checks.values())
    response.status_code = 200 if ok else 503
    # The worker that answered: a client waiting for N workers counts distinct ones (each
    # worker listens on its own SO_REUSEPORT socket and joins only once its app is built).
    return {"status": "ok" if ok else "unavailable", "checks": checks, "process": os.getpid()}


def _ledger_ok(container: Container) -> bool:
    try:
        with container.ledger.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception:  # any failure to answer is "not ready", never a 500
        logging.getLogger(__name__).warning("health: the ledger does not answer", exc_info=True)
        return False
    return True


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    body = request.app.state.metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A logging dictConfig (for uvicorn's log_config too): every logger as JSON lines."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLines}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
