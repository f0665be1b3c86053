"""Clients for one Redis URL: a single server or a Cluster, found out by asking the server.

Failure policy, the same for every client xfq makes: a command waits at most
`SOCKET_TIMEOUT_S` (to connect, then for its answer) and is sent once. redis-py can send a
command again after a connection error or a timeout, and its Cluster client does so three
times by default, each after asking the nodes for the topology: a claim to a paused master was
answered 503 after 56 s, a stock read after 55-75 s. Here the caller decides instead: a request is
answered 503 with Retry-After and its client retries with the same key; the persister's loop
tries again with a backoff; and a command whose answer was lost, sent again, could act twice (a
rollover's INCRBY would add its stock twice). A Cluster client still follows MOVED and ASK
redirections, and after a failed command it reads the topology again for the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from xfq.adapters.redis.scripts import Script
from xfq.domain.errors import StorageUnavailable

# Past this a command is abandoned and the caller answers 503: a Redis cut off by the network
# (or stopped) must not hold requests open for as long as it lasts. Above the persister's
# blocking read (500 ms). A Cluster may take twice this: the command, then the topology read.
SOCKET_TIMEOUT_S = 5.0
# Redis out of reach, refusing writes (a replica, out of memory) or its Cluster without a
# master for a slot; not a script's or a command's own error, which is a bug (500).
UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    OutOfMemoryError,
    ClusterError,
    TryAgainError,
    RedisClusterException,
    OSError,
)

SyncRedis = redis.Redis | redis.cluster.RedisCluster
AsyncRedis = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def _options(timeout_s: float) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),  # a client of its own each: redis-py changes it
    }


def is_cluster(url: str, timeout_s: float = SOCKET_TIMEOUT_S) -> bool:
    probe = redis.Redis.from_url(url, **_options(timeout_s))
    try:
        return int(probe.info("cluster").get("cluster_enabled", 0)) == 1
    finally:
        probe.close()


def sync_client(url: str, cluster: bool, timeout_s: float = SOCKET_TIMEOUT_S) -> SyncRedis:
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, **_options(timeout_s))
    return redis.Redis.from_url(url, **_options(timeout_s))


def async_client(url: str, cluster: bool, timeout_s: float = SOCKET_TIMEOUT_S) -> AsyncRedis:
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(url, **_options(timeout_s))
    return redis.asyncio.Redis.from_url(url, **_options(timeout_s))


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Raise Redis being out of reach inside as `StorageUnavailable` (503, Retry-After)."""
    try:
        yield
    except UNAVAILABLE as error:
        raise StorageUnavailable(f"{what}: Redis did not answer ({error})") from error


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
