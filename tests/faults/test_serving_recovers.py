"""`xfq serve --workers 2` on Redis and PostgreSQL: both workers start (neither takes the
embedded engine's lock), a worker killed with -9 is replaced without the server stopping, a
merchant approved through one worker is accepted by the other, a store's link cut off gives
503s, not hangs, and everything carries on once it heals, a claim is answered while a wallet
read on the same worker waits on the cut PostgreSQL link, a till's request replayed to the
other worker is refused (the nonces are in Redis), and a key revoked through one worker is
refused by both within the stated bound."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import httpx
import psycopg
import pytest

from faults.campaign import OPENS_AT, spec_text
from faults.deployment import Deployment, local_ports
from faults.proxy import FaultProxy
from xfq.api.auth.merchant_signature import signed_headers
from xfq.api.auth.tokens import Role
from xfq.bootstrap import KEY_REFRESH_S
from xfq.simulation.over_http import DemoIdentityProvider

RESPAWN_TIMEOUT_S = 60.0
# A request while a link is cut must be answered within the bounds (5 s each, a few of them on
# one path) and this margin: far below the minutes TCP would hold it, far above a loaded machine.
CUT_BOUND_S = 30.0
PERSISTED_TIMEOUT_S = 90.0  # the persister backs off up to 5 s a try; a loaded CI box is slow
CUT_HELD_S = 8.0  # past the 5 s answer bound: the persister's ledger write meets the cut
REDEEM_PATH = "/v1/merchant/redemptions"


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


def _ops(d: Deployment, key: str) -> dict[str, str]:
    token = d.idp.token("op-1", Role.OPERATOR, d.now, ttl=timedelta(days=1))
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key}


def _approve(d: Deployment, merchant_id: str = "shop", keys: int = 1) -> list[tuple[str, bytes]]:
    """Enroll and approve a merchant; each approval after the first issues another key."""
    body = {"id": merchant_id, "name": merchant_id, "category": "retail"}
    made = httpx.post(
        f"{d.base_url}/v1/ops/merchants", json=body, headers=_ops(d, f"e-{merchant_id}")
    )
    assert made.status_code == 201, made.text
    issued = []
    for n in range(keys):
        approved = httpx.post(
            f"{d.base_url}/v1/ops/merchants/{merchant_id}/approve",
            headers=_ops(d, f"a-{merchant_id}-{n}"),
        )
        assert approved.status_code == 200, approved.text
        issued.append((approved.json()["key_id"], approved.json()["secret"].encode()))
    return issued


def _signed_at_every_worker(d: Deployment, key_id: str, secret: bytes) -> Counter[int]:
    """Statuses of signed reads sent on new connections, so that both workers answer some."""
    path = "/v1/merchant/redemptions/no-such-redemption"
    statuses: Counter[int] = Counter()
    for _ in range(16):
        headers = signed_headers(key_id, secret, "GET", path, b"", d.now)
        statuses[httpx.get(f"{d.base_url}{path}", headers=headers).status_code] += 1
    return statuses


def test_a_merchant_approved_through_one_worker_signs_at_every_worker(
    deployment: Deployment,
) -> None:
    [(key_id, secret)] = _approve(deployment)
    statuses = _signed_at_every_worker(deployment, key_id, secret)
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


def _claim(d: Deployment, person: str, key: str) -> httpx.Response:
    token = d.idp.token(person, Role.CITIZEN, d.now, ttl=timedelta(days=1))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    body = {"type_id": "r1-retail-100-20"}
    return httpx.post(f"{d.base_url}/v1/claims", json=body, headers=headers, timeout=30)


def _till_code(d: Deployment, person: str, voucher_id: str) -> str:
    """The holder's code for the till, once the persister has moved the voucher."""
    token = d.idp.token(person, Role.CITIZEN, d.now, ttl=timedelta(days=1))
    path = f"{d.base_url}/v1/vouchers/{voucher_id}/till-code?qr=false"
    deadline = time.monotonic() + PERSISTED_TIMEOUT_S
    while (
        got := httpx.post(path, headers={"Authorization": f"Bearer {token}"})
    ).status_code != 200:
        assert time.monotonic() < deadline, got.text
        time.sleep(0.1)
    return str(got.json()["code"])


def _persisted(d: Deployment, voucher_id: str) -> bool:
    with psycopg.connect(d.postgres_url, connect_timeout=5) as connection:
        found = connection.execute("SELECT 1 FROM vouchers WHERE id = %s", (voucher_id,))
        return found.fetchone() is not None


def test_a_redemption_while_the_postgresql_link_is_cut_gets_a_503_not_a_hang(
    deployment: Deployment,
) -> None:
    assert deployment.postgres_proxy is not None
    [(key_id, secret)] = _approve(deployment, "till")
    assert _signed_at_every_worker(deployment, key_id, secret) == {404: 16}  # key known to both
    claimed = _claim(deployment, "p-pg-cut", "pg-cut-claim")
    assert claimed.status_code == 201, claimed.text
    code = _till_code(deployment, "p-pg-cut", claimed.json()["voucher"]["id"])
    raw = json.dumps({"code": code, "order_ref": "o-cut", "order": {"list_price_fen": 12000}})

    def redeem() -> httpx.Response:
        signed = signed_headers(key_id, secret, "POST", REDEEM_PATH, raw.encode(), deployment.now)
        headers = {**signed, "Idempotency-Key": "pg-cut", "Content-Type": "application/json"}
        return httpx.post(f"{deployment.base_url}{REDEEM_PATH}", content=raw, headers=headers,
                          timeout=120)  # fmt: skip

    deployment.postgres_proxy.set("blackhole")  # until the answer comes, however long
    started = time.monotonic()
    try:
        cut = redeem()
        waited_s = time.monotonic() - started
    finally:
        deployment.postgres_proxy.set("pass")
    assert cut.status_code == 503, cut.text
    assert cut.json()["code"] == "storage_unavailable"
    assert cut.headers["Retry-After"] == "1"
    assert waited_s < CUT_BOUND_S
    again = redeem()  # the same key, healed
    assert again.status_code == 201, again.text
    assert again.json()["code"] == "ok"


def test_the_persister_moves_claims_again_after_the_postgresql_link_was_cut(
    deployment: Deployment,
) -> None:
    assert deployment.postgres_proxy is not None and deployment.persister is not None
    persister_pid = deployment.persister.pid
    deployment.postgres_proxy.set("blackhole")
    try:
        claimed = _claim(deployment, "p-pg-persist", "pg-persist")  # decided in Redis
        assert claimed.status_code == 201, claimed.text
        time.sleep(CUT_HELD_S)
    finally:
        deployment.postgres_proxy.set("pass")
    voucher_id = claimed.json()["voucher"]["id"]
    deadline = time.monotonic() + PERSISTED_TIMEOUT_S
    while not _persisted(deployment, voucher_id):
        assert time.monotonic() < deadline, "the persister did not move the claim"
        time.sleep(0.1)
    assert deployment.persister.pid == persister_pid  # the same process, not restarted
    assert deployment.persister.poll() is None


Pinned = tuple[httpx.Client, int]  # a keep-alive client, the local port of its connection


def _port(answer: httpx.Response) -> int:
    """The local port of the connection an answer came on."""
    return int(answer.extensions["network_stream"].get_extra_info("client_addr")[1])


@contextmanager
def _clients_on_one_worker(d: Deployment) -> Iterator[tuple[Pinned, Pinned, int]]:
    """Two keep-alive clients, each on its own connection to the same worker process, and the
    process's id. An answer that came on the connection's port came from that process."""
    opened: list[httpx.Client] = []
    by_process: dict[int, Pinned] = {}
    try:
        while True:  # ends by the third client at the latest: two workers
            client = httpx.Client(base_url=d.base_url, timeout=2 * CUT_BOUND_S)
            opened.append(client)
            health = client.get("/health")
            process = health.json()["process"]
            if process in by_process:
                break
            by_process[process] = (client, _port(health))
        yield by_process[process], (client, _port(health)), process
    finally:
        for client in opened:
            client.close()


def _wait_held(proxy: FaultProxy, since: int, pid: int) -> None:
    """Until the cut link holds bytes or a connection of process `pid` that arrived after the
    proxy's `since`-th held one."""
    deadline = time.monotonic() + CUT_BOUND_S
    while not set(proxy.held[since:]) & local_ports(pid):
        assert time.monotonic() < deadline, f"nothing of process {pid} waits on the cut link"
        time.sleep(0.01)


def _answered_at(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    answer = send()
    return answer, time.monotonic()


def test_a_claim_is_answered_while_a_wallet_read_on_its_worker_waits_on_the_cut_ledger(
    deployment: Deployment,
) -> None:
    """The wallet reads the ledger off the event loop: while PostgreSQL is cut off, a claim sent
    to the same worker behind a wallet read stuck on the link is answered from Redis at once,
    then the wallet is answered 503 with Retry-After."""
    d, proxy = deployment, deployment.postgres_proxy
    assert proxy is not None
    token = d.idp.token("p-off-loop", Role.CITIZEN, d.now, ttl=timedelta(days=1))
    citizen = {"Authorization": f"Bearer {token}"}
    claim = {**citizen, "Idempotency-Key": "off-loop-claim"}
    with _clients_on_one_worker(d) as ((reading, reading_port), (claiming, claiming_port), pid):
        assert reading.get("/v1/wallet", headers=citizen).status_code == 200
        proxy.set("blackhole")  # until both answers came, however long
        try:
            since = len(proxy.held)
            with ThreadPoolExecutor(1) as waiting:
                wallet = waiting.submit(
                    _answered_at, lambda: reading.get("/v1/wallet", headers=citizen)
                )
                _wait_held(proxy, since, pid)  # the worker's ledger read of it is stuck
                claimed, claimed_at = _answered_at(
                    lambda: claiming.post(
                        "/v1/claims", json={"type_id": "r1-retail-30-6"}, headers=claim
                    )
                )
                cut, cut_at = wallet.result()
        finally:
            proxy.set("pass")
        assert (_port(cut), _port(claimed)) == (reading_port, claiming_port)  # both at `pid`
        assert claimed.status_code == 201, claimed.text
        assert cut.status_code == 503, cut.text
        assert cut.json()["code"] == "storage_unavailable"
        assert cut.headers["Retry-After"] == "1"
        assert claimed_at < cut_at  # the claim did not wait behind the wallet's read
        healed = reading.get("/v1/wallet", headers=citizen)
        assert healed.status_code == 200, healed.text


NOWHERE = "/v1/merchant/redemptions/no-such-redemption"  # 404 once the signature is accepted


@contextmanager
def _client_per_worker(d: Deployment) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two keep-alive clients, each on a connection to a different worker process."""
    found: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + 60
    try:
        while len(found) < 2:
            assert time.monotonic() < deadline, "new connections reached one worker only"
            client = httpx.Client(base_url=d.base_url, timeout=30)
            process = client.get("/health").json()["process"]
            if process in found:
                client.close()
            else:
                found[process] = client
        one, other = found.values()
        yield one, other
        for process, client in found.items():  # each answered on its own connection throughout
            assert client.get("/health").json()["process"] == process
    finally:
        for client in found.values():
            client.close()


def _signed_get(d: Deployment, client: httpx.Client, key: tuple[str, bytes]) -> httpx.Response:
    """A till's request with a fresh nonce."""
    key_id, secret = key
    return client.get(NOWHERE, headers=signed_headers(key_id, secret, "GET", NOWHERE, b"", d.now))


def _known_at(d: Deployment, client: httpx.Client, key: tuple[str, bytes]) -> None:
    """A key approved through one worker is known at the other within a second or so."""
    deadline = time.monotonic() + 5 * KEY_REFRESH_S
    while (answer := _signed_get(d, client, key)).status_code != 404:
        assert answer.json()["code"] == "unknown_key", answer.text
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def test_a_signed_request_replayed_to_the_other_worker_is_refused(
    deployment: Deployment,
) -> None:
    [key] = _approve(deployment, "shop-replay")
    key_id, secret = key
    headers = signed_headers(key_id, secret, "GET", NOWHERE, b"", deployment.now)
    with _client_per_worker(deployment) as (one, other):
        for client in (one, other):
            _known_at(deployment, client, key)
        assert one.get(NOWHERE, headers=headers).status_code == 404  # accepted: no such thing
        for client in (other, one):  # replayed to the other worker, and to the same one
            replay = client.get(NOWHERE, headers=headers)
            assert replay.status_code == 401, replay.text
            assert replay.json()["code"] == "replayed_nonce"


def test_a_key_revoked_through_one_worker_is_refused_by_both_within_the_bound(
    deployment: Deployment,
) -> None:
    old, new = _approve(deployment, "shop-rotate", keys=2)
    with _client_per_worker(deployment) as (one, other):
        for client in (one, other):
            for key in (old, new):
                _known_at(deployment, client, key)
        revoked = one.post(
            f"/v1/ops/merchants/shop-rotate/keys/{old[0]}/revoke",
            headers=_ops(deployment, "revoke-old"),
        )
        answered = time.monotonic()
        assert revoked.status_code == 200, revoked.text
        bound_s = revoked.json()["refused_everywhere_within_s"]
        assert bound_s == KEY_REFRESH_S
        refused_here = _signed_get(deployment, one, old)
        assert refused_here.status_code == 401 and refused_here.json()["code"] == "unknown_key"
        time.sleep(max(0.0, answered + bound_s - time.monotonic()))
        for client in (other, one):
            refused = _signed_get(deployment, client, old)
            assert refused.status_code == 401 and refused.json()["code"] == "unknown_key"
            assert _signed_get(deployment, client, new).status_code == 404  # still works


def test_a_signed_request_while_the_redis_link_is_cut_gets_a_503_not_an_unchecked_nonce(
    deployment: Deployment,
) -> None:
    assert deployment.redis_proxy is not None
    [key] = _approve(deployment, "shop-cut")
    with _client_per_worker(deployment) as (one, other):
        for client in (one, other):
            _known_at(deployment, client, key)
        deployment.redis_proxy.set("blackhole")
        try:
            cut = [_signed_get(deployment, client, key) for client in (one, other)]
        finally:
            deployment.redis_proxy.set("pass")
        for answer in cut:
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["code"] == "nonce_check_unavailable"
            assert answer.headers["Retry-After"] == "1"
        for client in (one, other):  # healed: the till signs again with a new nonce
            assert _signed_get(deployment, client, key).status_code == 404
