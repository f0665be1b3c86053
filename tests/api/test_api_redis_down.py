"""The API while its Redis is stopped: a 503 with Retry-After within a bound, then the same
requests answered once Redis is back, without restarting the app.

A Redis killed refuses connections at once; a paused one (SIGSTOP) accepts and never answers,
as a server cut off by the network does. `WAIT_BOUND_S` is generous (the clients give up after
`SOCKET_TIMEOUT_S`, a Cluster client may take that twice): 5.1 s here for each request to a
Cluster with a paused master. Before every client sent a command only once, a claim there was
answered after 56 s, and a Redis killed made the stock read a 500.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import EXAMPLE, OPENING, Api, serving

from servers.redis_fixtures import own_redis_server  # noqa: F401
from servers.redis_servers import REDIS_CLI, REDIS_SERVER, RedisCluster, RedisServer
from servers.redis_servers import start_cluster as start_redis_cluster
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.redis.connect import SOCKET_TIMEOUT_S
from xfq.adapters.redis.engine import RedisClaimEngine
from xfq.api.auth.tokens import Role
from xfq.config import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]
TYPE = "r6-retail-180-40"
WAIT_BOUND_S = 6 * SOCKET_TIMEOUT_S
BACK_WITHIN_S = 60.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A Cluster of this test's own (a node of it is paused)."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server or redis-cli is not installed")
    started = start_redis_cluster(tmp_path / "cluster")
    try:
        yield started
    finally:
        for node in started.nodes:  # a paused node would not stop
            if node.process is not None:
                os.kill(node.process.pid, signal.SIGCONT)
        started.stop()


async def _api(tmp_path: Path, redis_url: str, shards: int) -> AsyncIterator[Api]:
    clock = SimulatedClock(OPENING + timedelta(seconds=1))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        spec_path=EXAMPLE,
        redis_url=redis_url,
        redis_shards=shards,
    )
    async with serving(settings, clock) as api:
        yield api


@pytest.fixture
async def on_redis(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> AsyncIterator[Api]:
    async for api in _api(tmp_path, own_redis_server.url, shards=1):
        yield api


@pytest.fixture
async def on_cluster(tmp_path: Path, cluster: RedisCluster) -> AsyncIterator[Api]:
    async for api in _api(tmp_path, cluster.url, shards=len(cluster.nodes)):
        yield api


async def _unavailable(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    started = time.monotonic()
    answer = await call()
    waited_s = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["code"] == "storage_unavailable"
    assert waited_s < WAIT_BOUND_S, f"answered after {waited_s:.1f} s"
    return answer


async def _back(call: Callable[[], Awaitable[httpx.Response]], status: int) -> httpx.Response:
    """The answer once Redis is back; until then, only 503s."""
    deadline = time.monotonic() + BACK_WITHIN_S
    while (answer := await call()).status_code != status:
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, answer.text
        await anyio.sleep(0.2)
    return answer


async def test_a_stopped_redis_is_answered_503_at_once_and_served_again_when_back(
    on_redis: Api,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    api = on_redis
    ops = api.token("op", Role.OPERATOR)
    assert (await api.claim("before", TYPE)).status_code == 201
    own_redis_server.kill()

    await _unavailable(lambda: api.claim("alice", TYPE))
    await _unavailable(lambda: api.client.get("/v1/campaign"))  # the stock: a 500 before
    await _unavailable(lambda: api.client.get("/v1/ops/stats", headers=ops))
    moved = await _unavailable(
        lambda: api.client.post("/v1/ops/rounds/r6/cancel", headers=api.ops("cancel-1"))
    )
    assert "claim windows" in moved.json()["detail"]
    metrics = (await api.client.get("/metrics")).text  # the claim's 503 counted as the others'
    assert "xfq_storage_unavailable_total 4.0" in metrics

    own_redis_server.start()
    claimed = await _back(lambda: api.claim("alice", TYPE), 201)  # the same key
    assert claimed.json()["code"] == "issued"
    listed = await _back(lambda: api.client.get("/v1/campaign"), 200)
    remaining = {t["id"]: t["remaining"] for r in listed.json()["rounds"] for t in r["types"]}
    count = api.container.running()[0].voucher_type(TYPE)[1].count
    assert remaining[TYPE] == count - 2


async def test_a_paused_cluster_master_is_answered_503_within_the_bound(
    on_cluster: Api, cluster: RedisCluster
) -> None:
    api = on_cluster
    engine = api.container.running()[1]
    assert isinstance(engine, RedisClaimEngine)
    home = engine.layout.stock(engine.layout.home("alice"), TYPE)  # a key of alice's shard
    [paused] = [n for n in cluster.nodes if n.cli("EXISTS", home) == "1"]  # others: MOVED
    assert paused.process is not None
    os.kill(paused.process.pid, signal.SIGSTOP)
    try:
        await _unavailable(lambda: api.claim("alice", TYPE))
        await _unavailable(lambda: api.client.get("/v1/campaign"))
    finally:
        os.kill(paused.process.pid, signal.SIGCONT)

    claimed = await _back(lambda: api.claim("alice", TYPE), 201)  # the same key
    assert claimed.json()["code"] == "issued"
    assert (await _back(lambda: api.client.get("/v1/campaign"), 200)).status_code == 200


async def test_a_campaign_upload_while_redis_is_stopped_leaves_the_running_engine_serving(
    on_redis: Api,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    api = on_redis
    assert (await api.claim("before", TYPE)).status_code == 201
    own_redis_server.kill()

    spec = {"toml": EXAMPLE.read_text()}
    await _unavailable(
        lambda: api.client.put("/v1/ops/campaign", json=spec, headers=api.ops("upload-1"))
    )

    own_redis_server.start()  # the engine that ran before the upload serves again
    people = itertools.count()  # each try a new person: one person's tries would be rate-limited
    claimed = await _back(lambda: api.claim(f"p{next(people)}", TYPE), 201)
    assert claimed.json()["code"] == "issued"
    uploaded = await api.client.put("/v1/ops/campaign", json=spec, headers=api.ops("upload-2"))
    assert uploaded.status_code == 200, uploaded.text
    assert (await api.claim("bob", TYPE)).status_code == 201
