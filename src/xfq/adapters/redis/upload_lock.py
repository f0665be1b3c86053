"""One campaign upload at a time across every worker process that shares a Redis.

An upload writes Redis first (claim windows, counts, the spec's digest) and the ledger after;
two uploads through different workers at once could interleave and leave Redis and the ledger
on different specs. Each upload holds a key in Redis for its duration (`SET NX` with an expiry,
so that a process killed mid-upload blocks others for at most `HOLD_S`); a second upload meanwhile
is refused with a clear message instead. Released only by its holder (a token compared in Lua).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from xfq.adapters.redis import connect
from xfq.domain.errors import XfqError

HOLD_S = 60  # longer than an upload takes (a load is a few scripts), short for a crashed one
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class UploadUnderWay(XfqError):
    """Another worker process is installing a campaign upload right now (409)."""

    code = "upload_under_way"


def lock_key(campaign_id: str) -> str:
    return f"xfq:{campaign_id}:upload"


@contextmanager
def one_upload(redis: connect.SyncRedis, campaign_id: str) -> Iterator[None]:
    """Hold the campaign's upload lock while the body runs; `UploadUnderWay` if another holds
    it, `StorageUnavailable` if Redis is away."""
    key, token = lock_key(campaign_id), secrets.token_hex(16)
    with connect.storage_errors("the campaign upload could not start"):
        taken = redis.set(key, token, nx=True, ex=HOLD_S)
    if not taken:
        raise UploadUnderWay(
            "another campaign upload is being installed through another worker; "
            f"send this one again in a moment (a stuck one lapses within {HOLD_S} s)"
        )
    try:
        yield
    finally:
        with connect.storage_errors("the campaign upload's lock was not released"):
            redis.eval(_RELEASE, 1, key, token)
