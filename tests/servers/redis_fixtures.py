"""Pytest fixtures of throwaway Redis servers; a test module imports the ones it uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.redis_servers import (
    MISSING,
    REDIS_CLI,
    REDIS_SERVER,
    RedisCluster,
    RedisServer,
    start_cluster,
    start_server,
)


def _require_redis() -> None:
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip(MISSING)


@pytest.fixture(scope="session")
def redis_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    _require_redis()
    server = start_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_server_session: RedisServer) -> RedisServer:
    """One shared single-node Redis (appendfsync always), emptied for each test."""
    redis_server_session.flush()
    return redis_server_session


@pytest.fixture(scope="session")
def redis_cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    _require_redis()
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_session: RedisCluster) -> RedisCluster:
    """One shared 3-master Redis Cluster, emptied for each test."""
    redis_cluster_session.flush()
    return redis_cluster_session


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, for tests that kill or restart it."""
    _require_redis()
    server = start_server(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
