"""`xfq serve --workers 2` on Redis and PostgreSQL: both workers start (neither takes the
embedded engine's lock), a worker killed with -9 is replaced without the server stopping, and a
merchant approved through one worker is accepted by the other."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from faults.campaign import OPENS_AT, spec_text
from faults.deployment import Deployment
from xfq.api.auth.merchant_signature import signed_headers
from xfq.api.auth.tokens import Role
from xfq.simulation.over_http import DemoIdentityProvider

RESPAWN_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp_path = tmp_path_factory.mktemp("serving")
    spec = tmp_path / "campaign.toml"
    spec.write_text(spec_text(), encoding="utf-8")
    idp = DemoIdentityProvider(environment="development")
    made = Deployment(tmp_path, spec, idp, OPENS_AT + timedelta(minutes=1))
    made.start()
    try:
        yield made
    finally:
        made.close()


def _approve(d: Deployment) -> tuple[str, bytes]:
    token = d.idp.token("op-1", Role.OPERATOR, d.now, ttl=timedelta(days=1))
    ops = {"Authorization": f"Bearer {token}"}
    body = {"id": "shop", "name": "Shop", "category": "retail"}
    made = httpx.post(
        f"{d.base_url}/v1/ops/merchants", json=body, headers={**ops, "Idempotency-Key": "e"}
    )
    assert made.status_code == 201, made.text
    approved = httpx.post(
        f"{d.base_url}/v1/ops/merchants/shop/approve", headers={**ops, "Idempotency-Key": "a"}
    )
    assert approved.status_code == 200, approved.text
    return approved.json()["key_id"], approved.json()["secret"].encode()


def test_a_merchant_approved_through_one_worker_signs_at_every_worker(
    deployment: Deployment,
) -> None:
    key_id, secret = _approve(deployment)
    path = "/v1/merchant/redemptions/no-such-redemption"
    statuses: Counter[int] = Counter()
    for _ in range(16):  # a new connection each time: both workers answer some
        headers = signed_headers(key_id, secret, "GET", path, b"", deployment.now)
        statuses[httpx.get(f"{deployment.base_url}{path}", headers=headers).status_code] += 1
    assert statuses == {404: 16}  # signature accepted, no such redemption


def test_a_worker_killed_with_minus_9_is_replaced(deployment: Deployment) -> None:
    before = deployment.worker_pids()
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + RESPAWN_TIMEOUT_S
    while len(set(deployment.worker_pids()) - set(before)) < 1:
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.1)
    assert deployment.api is not None and deployment.api.poll() is None  # the server stayed up
    deployment.wait_healthy()
    assert deployment.restarts["api"] == 0


def test_a_claim_while_the_redis_link_is_cut_gets_a_503_not_a_hang(
    deployment: Deployment,
) -> None:
    assert deployment.redis_proxy is not None
    token = deployment.idp.token("p-cut", Role.CITIZEN, deployment.now, ttl=timedelta(days=1))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "cut-1"}
    url = f"{deployment.base_url}/v1/claims"
    body = {"type_id": "r1-retail-30-6"}
    deployment.redis_proxy.set("blackhole")  # until the answer comes, however long
    try:
        cut = httpx.post(url, json=body, headers=headers, timeout=120)
    finally:
        deployment.redis_proxy.set("pass")
    assert cut.status_code == 503, cut.text
    assert cut.headers["Retry-After"] == "1"
    again = httpx.post(url, json=body, headers=headers, timeout=30)  # the same key, healed
    assert again.status_code == 201, again.text
