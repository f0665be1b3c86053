"""What operators watch: /health, /metrics, and the server's logs as JSON lines."""

from __future__ import annotations

import json
import logging
import os
import re
import sys

import pytest
import sqlalchemy as sa
from conftest import OPENING, Api

from xfq.api.observability import JsonLines

pytestmark = pytest.mark.anyio
RETAIL = "r6-retail-180-40"


def _sample(metrics: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$"
    found = re.search(pattern, metrics, re.MULTILINE)
    assert found, f"{name}{labels} not in:\n{metrics}"
    return float(found.group(1))


async def test_health_says_the_ledger_answers_and_a_campaign_is_loaded(api: Api) -> None:
    answer = await api.client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "checks": {"ledger": True, "campaign": True},
        "process": os.getpid(),
    }


async def test_health_is_503_when_the_ledger_does_not_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = sa.create_engine("sqlite:////nonexistent-xfq-dir/ledger.db")  # cannot be opened
    monkeypatch.setattr(api.container.ledger, "engine", gone)
    answer = await api.client.get("/health")
    assert answer.status_code == 503
    assert answer.json()["checks"]["ledger"] is False


async def test_metrics_count_claim_answers_by_code_with_their_latency(api: Api) -> None:
    api.clock.set(OPENING)
    assert (await api.claim("alice", RETAIL)).status_code == 201
    assert (await api.claim("alice", RETAIL, key="again")).json()["code"] == "limit_reached"
    assert (await api.client.post("/v1/claims", json={"type_id": RETAIL})).status_code == 401
    metrics = (await api.client.get("/metrics")).text
    assert _sample(metrics, "xfq_claims_total", '{code="issued"}') == 1
    assert _sample(metrics, "xfq_claims_total", '{code="limit_reached"}') == 1
    assert _sample(metrics, "xfq_claims_total", '{code="missing_token"}') == 1
    assert _sample(metrics, "xfq_claim_seconds_count") == 3
    assert _sample(metrics, "xfq_ledger_pending_writes") == 0


def test_log_records_are_one_json_object_a_line_with_the_exception() -> None:
    try:
        raise ValueError("bad batch")
    except ValueError:
        record = logging.LogRecord(
            "xfq.ledger", logging.ERROR, __file__, 1, "batch of %d failed", (3,), sys.exc_info()
        )
    line = JsonLines().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "error" and entry["logger"] == "xfq.ledger"
    assert entry["message"] == "batch of 3 failed"
    assert "ValueError: bad batch" in entry["exception"]
