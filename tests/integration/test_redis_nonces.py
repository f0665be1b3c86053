"""Merchants' nonces in a real Redis, shared by stores as the API's worker processes share it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from servers.redis_fixtures import (  # noqa: F401
    redis_cluster,
    redis_cluster_session,
    redis_server,
    redis_server_session,
)
from servers.redis_servers import RedisCluster, RedisServer, free_port
from xfq.adapters.redis.connect import sync_client
from xfq.adapters.redis.nonces import PREFIX, NonceCheckUnavailable, RedisNonceStore
from xfq.api.auth.merchant_signature import SignatureVerifier, signed_headers

NOW_S = 1_646_445_600.0  # 2022-03-05 10:00 +08:00: a simulated clock, years behind Redis's
EXPIRES_S = int(NOW_S) + 300
NONCE = "n0nce-0000000000000001"


def test_a_nonce_is_accepted_once_whichever_process_sees_it(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one, other = RedisNonceStore(redis_server.url), RedisNonceStore(redis_server.url)
    assert one.remember("mk_a", NONCE, EXPIRES_S, NOW_S)
    assert not other.remember("mk_a", NONCE, EXPIRES_S, NOW_S)
    assert not one.remember("mk_a", NONCE, EXPIRES_S, NOW_S)
    assert other.remember("mk_b", NONCE, EXPIRES_S, NOW_S)  # nonces are per key


def test_the_nonce_is_kept_for_its_window_even_by_a_clock_far_from_redis_s(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    store = RedisNonceStore(redis_server.url)
    assert store.remember("mk_a", NONCE, EXPIRES_S, NOW_S)
    ttl_s = sync_client(redis_server.url, False).ttl(f"{PREFIX}:mk_a:{NONCE}")
    assert 300 <= ttl_s <= 301  # the window left by the caller's clock, then gone by itself


def test_of_workers_racing_one_nonce_exactly_one_accepts_it(
    redis_cluster: RedisCluster,  # noqa: F811
) -> None:
    stores = [RedisNonceStore(redis_cluster.url) for _ in range(8)]
    start = threading.Barrier(len(stores))
    accepted: list[bool] = []

    def race(store: RedisNonceStore) -> None:
        start.wait()
        accepted.append(store.remember("mk_a", NONCE, EXPIRES_S, NOW_S))

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(accepted) == [False] * 7 + [True]


def test_an_unreachable_redis_refuses_the_request_quickly_and_never_accepts_it() -> None:
    secret = b"s" * 32
    verifier = SignatureVerifier(
        {"mk_a": (secret, "shop")},
        nonce_store=RedisNonceStore(f"redis://127.0.0.1:{free_port()}/0"),
    )
    now = datetime.fromtimestamp(NOW_S, UTC)
    headers = signed_headers("mk_a", secret, "GET", "/x", b"", now)
    started = time.monotonic()
    with pytest.raises(NonceCheckUnavailable) as refused:
        verifier.verify(headers, "GET", "/x", b"", now)
    assert time.monotonic() - started < 2
    assert refused.value.code == "nonce_check_unavailable"
