"""Schemathesis over the published OpenAPI: no 5xx and no answer outside the schema.

Bounded for the default run (a few examples per operation); XFQ_SCHEMATHESIS_EXAMPLES raises it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.api.auth.tokens import Role
from xfq.bootstrap import build
from xfq.config import Settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
EXAMPLES = int(os.environ.get("XFQ_SCHEMATHESIS_EXAMPLES", "15"))


def _app(directory: Path) -> tuple[object, str, str]:
    campaign = __import__("xfq.spec", fromlist=["load_campaign"]).load_campaign(EXAMPLE)
    opening = campaign.round("r6").opens_at
    clock = SimulatedClock(opening + timedelta(minutes=1))
    settings = Settings(database_url=f"sqlite:///{directory / 'ledger.db'}", spec_path=EXAMPLE)
    container = build(settings, clock)
    issuer = container.dev_issuer
    assert issuer is not None
    citizen = issuer.token("fuzz-citizen", Role.CITIZEN, clock.now(), ttl=timedelta(days=1))
    operator = issuer.token("fuzz-operator", Role.OPERATOR, clock.now(), ttl=timedelta(days=1))
    return create_app(container), citizen, operator


_DIR = Path(os.environ.get("XFQ_SCHEMATHESIS_DIR", "/tmp")) / f"xfq-schemathesis-{os.getpid()}"
_DIR.mkdir(parents=True, exist_ok=True)
APP, CITIZEN, OPERATOR = _app(_DIR)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(autouse=True, scope="module")
def _cleanup() -> Iterator[None]:
    yield
    for item in _DIR.iterdir():
        item.unlink()
    _DIR.rmdir()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: schemathesis.Case[Any]) -> None:
    token = OPERATOR if case.path.startswith("/v1/ops") else CITIZEN
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "fuzz-key"}
    headers.update(case.headers or {})
    case.call_and_validate(headers=headers)
