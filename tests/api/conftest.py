"""An xfq API on a real SQLite ledger in a temp dir, the reference campaign, a simulated clock.

A test module runs on both ledgers (SQLite and PostgreSQL) with `ON_BOTH_LEDGERS` in its marks.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from xfq.adapters.clock import SimulatedClock
from xfq.api.app import create_app
from xfq.api.auth.merchant_signature import signed_headers
from xfq.api.auth.tokens import Role
from xfq.bootstrap import Container, build
from xfq.config import Settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
TZ = ZoneInfo("Asia/Shanghai")
OPENING = datetime(2022, 3, 5, 10, 0, tzinfo=TZ)


@dataclass
class Till:
    merchant_id: str
    key_id: str
    secret: bytes


@dataclass
class Api:
    client: httpx.AsyncClient
    container: Container
    clock: SimulatedClock

    def token(self, subject: str, role: Role = Role.CITIZEN, **claims: Any) -> dict[str, str]:
        issuer = self.container.dev_issuer
        assert issuer is not None
        token = issuer.token(subject, role, self.clock.now(), **claims)
        return {"Authorization": f"Bearer {token}"}

    async def claim(self, person: str, type_id: str, key: str | None = None) -> httpx.Response:
        headers = {**self.token(person), "Idempotency-Key": key or f"{person}-{type_id}"}
        return await self.client.post("/v1/claims", json={"type_id": type_id}, headers=headers)

    def ops(self, key: str) -> dict[str, str]:
        return {**self.token("op1", Role.OPERATOR), "Idempotency-Key": key}

    async def enroll(self, merchant_id: str, category: str) -> Till:
        body = {"id": merchant_id, "name": f"{merchant_id} shop", "category": category}
        made = await self.client.post(
            "/v1/ops/merchants", json=body, headers=self.ops(f"enroll-{merchant_id}")
        )
        assert made.status_code == 201, made.text
        approved = await self.client.post(
            f"/v1/ops/merchants/{merchant_id}/approve", headers=self.ops(f"approve-{merchant_id}")
        )
        assert approved.status_code == 200, approved.text
        key = approved.json()
        return Till(merchant_id, key["key_id"], key["secret"].encode())

    async def signed(
        self,
        till: Till,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
        nonce: str | None = None,
    ) -> httpx.Response:
        raw = b"" if body is None else json.dumps(body).encode()
        headers = signed_headers(
            till.key_id, till.secret, method, path, raw, self.clock.now(), nonce
        )
        headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.request(method, path, content=raw, headers=headers)

    async def till_code(self, person: str, voucher_id: str) -> str:
        answer = await self.client.post(
            f"/v1/vouchers/{voucher_id}/till-code", headers=self.token(person)
        )
        assert answer.status_code == 200, answer.text
        code: str = answer.json()["code"]
        return code


def persisted(api: Api, count: int, timeout_s: float = 30) -> int:
    """Vouchers in the ledger once the persister thread has moved `count` (or time ran out)."""
    deadline = time.monotonic() + timeout_s
    held = 0
    while time.monotonic() < deadline:
        held = sum(1 for _ in api.container.ledger.issued_claims())
        if held >= count:
            break
        time.sleep(0.05)
    return held


@asynccontextmanager
async def serving(settings: Settings, clock: SimulatedClock) -> AsyncIterator[Api]:
    """The app on a container built from `settings` (each call a start of the server),
    closed on leaving."""
    container = build(settings, clock)
    # As a server does: an error the app did not map is a 500 answer, not raised to the client.
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
            yield Api(client, container, clock)
    finally:
        container.close()


ON_BOTH_LEDGERS = pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new ledger: SQLite unless a module asks for both (`ON_BOTH_LEDGERS`)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def container(ledger_url: str) -> Iterator[tuple[Container, SimulatedClock]]:
    clock = SimulatedClock(OPENING - timedelta(minutes=5))
    settings = Settings(database_url=ledger_url, spec_path=EXAMPLE)
    built = build(settings, clock)
    yield built, clock
    built.close()


@pytest.fixture
async def api(container: tuple[Container, SimulatedClock]) -> AsyncIterator[Api]:
    built, clock = container
    transport = httpx.ASGITransport(app=create_app(built))
    async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
        yield Api(client, built, clock)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
