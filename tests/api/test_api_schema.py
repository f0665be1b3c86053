"""Schemathesis over the published OpenAPI: no 5xx and no answer outside the schema.

Bounded for the default run (a few examples per operation); XFQ_SCHEMATHESIS_EXAMPLES raises it.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation.modes import GenerationMode
from starlette.testclient import TestClient

from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.api.auth.tokens import Role
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
EXAMPLES = int(os.environ.get("XFQ_SCHEMATHESIS_EXAMPLES", "15"))
STATEFUL_EXAMPLES = int(os.environ.get("XFQ_SCHEMATHESIS_STATEFUL", "30"))
CAMPAIGN = load_campaign(EXAMPLE)


def _app(directory: Path) -> tuple[object, str, str]:
    opening = CAMPAIGN.round("r6").opens_at
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
    shutil.rmtree(_DIR)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: schemathesis.Case[Any]) -> None:
    token = OPERATOR if case.path.startswith("/v1/ops") else CITIZEN
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "fuzz-key"}
    headers.update(case.headers or {})
    case.call_and_validate(headers=headers)


# --- stateful: claim → wallet → till code → quote → redeem → redemption → refund -------------


class _FreshServer:
    """The journey's server, built anew for every example (a server of its own: the stateless run
    above cancels rounds and suspends shops at random). Hypothesis replays choices and expects
    them to lead where they led before; on a shared ledger a voucher an earlier example redeemed,
    or an order number it used, answers differently and the journey is reported as flaky."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.examples = itertools.count()
        self.app: Any = None
        self.operator = ""
        self.renew()

    def renew(self) -> None:
        here = self.directory / str(next(self.examples))
        here.mkdir(parents=True)
        self.app, _, self.operator = _app(here)
        _enroll_shop(self.app, self.operator)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


RETAIL_TYPES = [t.id for t in CAMPAIGN.round("r6").types if t.category == "retail"]
SHOP = "fuzz-shop"


def _enroll_shop(app: Any, operator: str) -> None:
    """A retail shop the tills' requests act as (its signature is tested elsewhere)."""
    from xfq.api.deps import merchant

    client = TestClient(app)
    headers = {"Authorization": f"Bearer {operator}", "Idempotency-Key": "enroll-shop"}
    body = {"id": SHOP, "name": "fuzz shop", "category": "retail"}
    assert client.post("/v1/ops/merchants", json=body, headers=headers).status_code == 201
    headers["Idempotency-Key"] = "approve-shop"
    assert client.post(f"/v1/ops/merchants/{SHOP}/approve", headers=headers).status_code == 200
    app.app.dependency_overrides[merchant] = lambda: SHOP  # the FastAPI app behind the claim front


JOURNEY_SERVER = _FreshServer(_DIR / "journey")


# The journey's operations only: the stateless test above covers the others, and an operator's
# cancelled round or suspended shop would end every journey early. Schema-valid requests only:
# the tills' signatures are taken as given here (tested elsewhere), so a request without them
# would be accepted.
JOURNEY = schemathesis.openapi.from_asgi("/openapi.json", JOURNEY_SERVER).include(
    path_regex=r"^/v1/(claims|wallet|vouchers/|merchant/(quotes|redemptions))"
)
JOURNEY.config.generation.update(modes=[GenerationMode.POSITIVE])


class VoucherJourney(JOURNEY.as_state_machine()):  # type: ignore[misc]
    """Schemathesis follows the OpenAPI links; claims name a real retail type half the time, each
    by a new citizen (one person soon reaches the limits), whose token the voucher's later
    calls carry."""

    person = "fuzz-citizen"

    def __init__(self) -> None:
        super().__init__()
        JOURNEY_SERVER.renew()
        HOLDERS.clear()

    def before_call(self, case: schemathesis.Case[Any]) -> None:
        body = case.body
        if case.path != "/v1/claims" or not isinstance(body, dict) or set(body) != {"type_id"}:
            return
        n, given = hash(str(body)) % (2 * len(RETAIL_TYPES)), body["type_id"]
        if isinstance(given, str) and 0 < len(given) <= 64 and n < len(RETAIL_TYPES):
            body["type_id"] = RETAIL_TYPES[n]  # only a valid body: a negative case stays one

    def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
        self.person = _citizen_for(case)
        token = JOURNEY_SERVER.operator if case.path.startswith("/v1/ops") else _token(self.person)
        headers = dict(case.headers or {})
        # A new key for every call: schemathesis draws keys from a small space, and a key it
        # drew twice for two different bodies is rightly refused (422 idempotency_conflict),
        # which is retry semantics, tested elsewhere, not the journey's schema.
        headers["Idempotency-Key"] = f"k-{next(_KEYS)}"
        headers["Authorization"] = f"Bearer {token}"  # never its made-up credentials
        return {"headers": headers}

    def after_call(self, response: Any, case: schemathesis.Case[Any]) -> None:
        REACHED[f"{case.method} {case.path} {response.status_code}"] += 1
        if case.path == "/v1/claims" and response.status_code == 201:
            HOLDERS[response.json()["voucher"]["id"]] = self.person
            HOLDERS[""] = self.person  # the latest claimant: whose wallet to show


_KEYS = itertools.count()
_PEOPLE = itertools.count()
HOLDERS: dict[str, str] = {}  # voucher id -> the citizen who claimed it
REACHED: Counter[str] = Counter()  # "METHOD path status" of every call the journeys made


def _citizen_for(case: schemathesis.Case[Any]) -> str:
    if case.path == "/v1/claims":
        return f"fuzz-{next(_PEOPLE)}"
    voucher = (case.path_parameters or {}).get("voucher_id", "")
    return HOLDERS.get(voucher) or HOLDERS.get("", "fuzz-citizen")


def _token(person: str) -> str:
    container = JOURNEY_SERVER.app.app.state.container
    token: str = container.dev_issuer.token(
        person, Role.CITIZEN, container.clock.now(), ttl=timedelta(days=1)
    )
    return token


def test_a_voucher_journey_along_the_links_stays_within_the_schema() -> None:
    VoucherJourney.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert REACHED["POST /v1/claims 201"]
    assert REACHED["POST /v1/vouchers/{voucher_id}/till-code 200"]  # the links were followed
