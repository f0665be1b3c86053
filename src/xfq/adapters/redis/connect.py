"""Clients for one Redis URL: a single server or a Cluster, found out by asking the server."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from xfq.adapters.redis.scripts import Script

# Past this a command is abandoned and the caller answers 503: a Redis cut off by the network
# (or stopped) must not hold requests open for as long as it lasts. Above the persister's
# blocking read (500 ms).
SOCKET_TIMEOUT_S = 5.0

SyncRedis = redis.Redis | redis.cluster.RedisCluster
AsyncRedis = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def _timeouts(timeout_s: float) -> dict[str, float]:
    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}


def is_cluster(url: str, timeout_s: float = SOCKET_TIMEOUT_S) -> bool:
    probe = redis.Redis.from_url(url, decode_responses=True, **_timeouts(timeout_s))
    try:
        return int(probe.info("cluster").get("cluster_enabled", 0)) == 1
    finally:
        probe.close()


def sync_client(
    url: str, cluster: bool, timeout_s: float = SOCKET_TIMEOUT_S, retry: bool = True
) -> SyncRedis:
    """`retry=False`: a command that failed on the connection is not sent again (redis-py
    retries ten times by default), for commands whose second sending could answer differently."""
    options: dict[str, Any] = _timeouts(timeout_s)
    if not retry:
        options["retry"] = Retry(NoBackoff(), 0)
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, decode_responses=True, **options)
    return redis.Redis.from_url(url, decode_responses=True, **options)


def async_client(url: str, cluster: bool) -> AsyncRedis:
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(
            url, decode_responses=True, **_timeouts(SOCKET_TIMEOUT_S)
        )
    return redis.asyncio.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
    )


def run(client: SyncRedis, script: Script, key: str, *args: str | int) -> Any:
    """EVALSHA, loading the script on the node first if it has not seen it."""
    try:
        return client.evalsha(script.sha, 1, key, *args)
    except NoScriptError:
        return client.eval(script.source, 1, key, *args)


async def run_async(client: AsyncRedis, script: Script, key: str, *args: str | int | bytes) -> Any:
    try:
        return await client.evalsha(script.sha, 1, key, *args)
    except NoScriptError:
        return await client.eval(script.source, 1, key, *args)
