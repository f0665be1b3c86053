"""Signed requests from merchants' POS systems: an API key id, a timestamp, a nonce, an HMAC.

The signature covers this canonical string (lines joined by "\\n"):

    METHOD
    PATH_WITH_QUERY          exactly as sent, e.g. /merchant/v1/redemptions?dry_run=1
    TIMESTAMP                unix seconds, the X-Xfq-Timestamp header
    NONCE                    16-64 url-safe characters, the X-Xfq-Nonce header
    SHA256_HEX(BODY)

and is sent as hex HMAC-SHA256 with the key's secret in X-Xfq-Signature. A request
is refused when its timestamp is more than `max_skew` away from now, or when its nonce was
already used with that key while the timestamp could still be accepted.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import math
import re
import secrets as secrets_module
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from xfq.api.auth.tokens import AuthError

HEADER_KEY = "X-Xfq-Key"
HEADER_TIMESTAMP = "X-Xfq-Timestamp"
HEADER_NONCE = "X-Xfq-Nonce"
HEADER_SIGNATURE = "X-Xfq-Signature"
DEFAULT_MAX_SKEW = timedelta(minutes=5)
DEFAULT_NONCE_CAPACITY = 100_000
MIN_SECRET_BYTES = 32
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class SignatureCode(StrEnum):
    MISSING_HEADERS = "missing_signature_headers"
    UNKNOWN_KEY = "unknown_key"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    MALFORMED_NONCE = "malformed_nonce"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED_NONCE = "replayed_nonce"
    NONCE_STORE_FULL = "nonce_store_full"


class SignatureError(AuthError):
    """A merchant request's signature headers were missing or refused (401)."""

    def __init__(self, code: SignatureCode, detail: str, status: int = 401) -> None:
        super().__init__(code, detail, status=status)


class NonceStoreFull(SignatureError):
    """Too many signed requests inside one skew window to remember their nonces (429).

    Forgetting an unexpired nonce would let that request be replayed, so new requests are
    refused instead until the oldest nonces expire, `retry_after_s` from now.
    """

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            SignatureCode.NONCE_STORE_FULL,
            "too many signed requests in the replay window; retry shortly",
            status=429,
        )
        self.retry_after_s = retry_after_s


class NonceStore(Protocol):
    def remember(self, key_id: str, nonce: str, expires_at_s: int, now_s: float) -> bool:
        """True when the nonce is new for this key (and is now remembered until
        `expires_at_s`); False when it was already seen. Raises `NonceStoreFull`, or a
        `StorageUnavailable` when a shared store cannot be asked: never True unchecked."""
        ...


class InMemoryNonceStore:
    """Nonces of one process, bounded by `capacity`, forgotten once they have expired.

    Only right for a single API process: several processes share one in Redis
    (`xfq.adapters.redis.nonces.RedisNonceStore`, chosen in `xfq.bootstrap`).
    """

    def __init__(self, capacity: int = DEFAULT_NONCE_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("nonce capacity must be at least 1")
        self.capacity = capacity
        self._expiry_s: dict[tuple[str, str], int] = {}
        self._by_expiry: list[tuple[int, str, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry_s)

    def remember(self, key_id: str, nonce: str, expires_at_s: int, now_s: float) -> bool:
        with self._lock:
            self._forget_expired(now_s)
            if (key_id, nonce) in self._expiry_s:
                return False
            if len(self._expiry_s) >= self.capacity:
                raise NonceStoreFull(retry_after_s=max(1, math.ceil(self._by_expiry[0][0] - now_s)))
            self._expiry_s[(key_id, nonce)] = expires_at_s
            heapq.heappush(self._by_expiry, (expires_at_s, key_id, nonce))
            return True

    def _forget_expired(self, now_s: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now_s:
            _, key_id, nonce = heapq.heappop(self._by_expiry)
            del self._expiry_s[(key_id, nonce)]


def canonical_request(method: str, path: str, timestamp: int, nonce: str, body: bytes) -> str:
    body_hash = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{body_hash}"


def sign(secret: bytes, method: str, path: str, timestamp: int, nonce: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of the canonical request."""
    message = canonical_request(method, path, timestamp, nonce, body).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(
    key_id: str,
    secret: bytes,
    method: str,
    path: str,
    body: bytes,
    now: datetime,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers a client sends with a request (a fresh random nonce by default)."""
    timestamp = int(_epoch_seconds(now))
    nonce = nonce if nonce is not None else secrets_module.token_urlsafe(24)
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(secret, method, path, timestamp, nonce, body),
    }


class SignatureVerifier:
    def __init__(
        self,
        secrets: Mapping[str, tuple[bytes, str]],
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        nonce_capacity: int = DEFAULT_NONCE_CAPACITY,
        nonce_store: NonceStore | None = None,
    ) -> None:
        """`secrets` maps key id -> (secret, merchant_id). It is read on every request, not
        copied, so keys added or removed later (enrolment, revocation) take effect at once.
        Pass `nonce_store` to share one store between verifiers or processes."""
        for key_id, (secret, merchant_id) in secrets.items():
            _check_key(key_id, secret, merchant_id)
        if max_skew < timedelta(seconds=1):
            raise ValueError("max_skew must be at least one second")
        self._secrets = secrets
        self._max_skew_s = int(max_skew.total_seconds())
        self._nonces = (
            nonce_store if nonce_store is not None else InMemoryNonceStore(nonce_capacity)
        )

    def verify(
        self, headers: Mapping[str, str], method: str, path: str, body: bytes, now: datetime
    ) -> str:
        """The merchant id a signed request is from, or a `SignatureError`."""
        now_s = _epoch_seconds(now)
        key_id, timestamp_text, nonce, signature = _signature_headers(headers)
        entry = self._secrets.get(key_id)
        if entry is None:
            raise SignatureError(SignatureCode.UNKNOWN_KEY, "the API key is not known")
        secret, merchant_id = entry
        timestamp = self._fresh_timestamp(timestamp_text, now_s)
        if not _NONCE.fullmatch(nonce):
            raise SignatureError(
                SignatureCode.MALFORMED_NONCE, "the nonce must be 16-64 url-safe characters"
            )
        expected = sign(secret, method, path, timestamp, nonce, body)
        if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(
            signature.lower(), expected
        ):
            raise SignatureError(
                SignatureCode.BAD_SIGNATURE, "the request signature does not verify"
            )
        # Remembered only after the signature verifies, so strangers cannot fill the store.
        if not self._nonces.remember(key_id, nonce, timestamp + self._max_skew_s, now_s):
            raise SignatureError(SignatureCode.REPLAYED_NONCE, "this nonce was already used")
        return merchant_id

    def _fresh_timestamp(self, text: str, now_s: float) -> int:
        if not _TIMESTAMP.fullmatch(text):
            raise SignatureError(
                SignatureCode.MALFORMED_TIMESTAMP, "the timestamp must be unix seconds"
            )
        timestamp = int(text)
        if now_s - timestamp > self._max_skew_s:
            raise SignatureError(SignatureCode.STALE_TIMESTAMP, "the request timestamp is too old")
        if timestamp - now_s > self._max_skew_s:
            raise SignatureError(
                SignatureCode.FUTURE_TIMESTAMP, "the request timestamp is in the future"
            )
        return timestamp


def _check_key(key_id: str, secret: bytes, merchant_id: str) -> None:
    if len(secret) < MIN_SECRET_BYTES or not merchant_id:
        raise ValueError(f"key {key_id!r}: needs a {MIN_SECRET_BYTES}-byte secret and a merchant")


def _signature_headers(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    # HTTP header names are case-insensitive; a plain dict is not.
    lowered = {name.lower(): value for name, value in headers.items()}
    names = (HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
    missing = [name for name in names if not lowered.get(name.lower())]
    if missing:
        raise SignatureError(
            SignatureCode.MISSING_HEADERS, f"missing headers: {', '.join(missing)}"
        )
    key_id, timestamp, nonce, signature = (lowered[name.lower()] for name in names)
    return key_id, timestamp, nonce, signature


def _epoch_seconds(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.timestamp()
