"""Merchants' request nonces in Redis, shared by every API worker process (see
`xfq.api.auth.merchant_signature.NonceStore`).

One `SET <prefix>:<key id>:<nonce> 1 NX EX <ttl>` per signed request: atomic, so of two workers
given the same request at once exactly one accepts it, and the key expires on its own.

Failure policy: when Redis cannot be asked (refused, timed out, read-only, out of memory) the
request is refused with `NonceCheckUnavailable` (503, Retry-After), never accepted unchecked.
"""

from __future__ import annotations

import math
import threading

from redis.exceptions import RedisError

from xfq.adapters.redis.connect import SyncRedis, is_cluster, sync_client
from xfq.domain.errors import StorageUnavailable

PREFIX = "xfq:nonce"
# A till waits at most this long for the replay check before its 503: Redis answers a SET in
# well under a millisecond, so a second is a link or server in trouble.
TIMEOUT_S = 1.0


class NonceCheckUnavailable(StorageUnavailable):
    """The shared nonce store could not be asked: the request was not accepted (503)."""

    code = "nonce_check_unavailable"


class RedisNonceStore:
    """Implements `NonceStore` over one Redis (or Cluster) that every worker shares."""

    def __init__(self, url: str, prefix: str = PREFIX, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._client: SyncRedis | None = None
        self._connecting = threading.Lock()

    def remember(self, key_id: str, nonce: str, expires_at_s: int, now_s: float) -> bool:
        # A TTL relative to the caller's clock, not EXAT: the API's clock may be simulated or
        # differ from Redis's, and an expiry in Redis's past would forget the nonce at once.
        ttl_s = max(1, math.ceil(expires_at_s - now_s) + 1)
        try:
            stored = self._redis().set(f"{self._prefix}:{key_id}:{nonce}", 1, nx=True, ex=ttl_s)
        except (RedisError, OSError) as error:
            raise NonceCheckUnavailable(
                "the replay check could not reach its store; the request was not accepted"
            ) from error
        return stored is not None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _redis(self) -> SyncRedis:
        # Connected on first use: a Redis down while the API starts is a 503 per request,
        # the same as one that goes down later.
        if self._client is not None:
            return self._client
        with self._connecting:
            if self._client is None:
                cluster = is_cluster(self._url, self._timeout_s)
                # Sent once (as by every client, see connect.py): a SET NX whose answer was lost
                # would, sent again, find its own nonce and call a genuine request a replay.
                # The till retries with a new nonce.
                self._client = sync_client(self._url, cluster, self._timeout_s)
            return self._client
