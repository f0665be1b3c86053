"""Verified bearer tokens kept for a while, so a person's repeated claims skip the signature check.

Verifying an EdDSA token costs ~0.1 ms of CPU here, more than the rest of the claim path. A token
seen before is trusted again until its own expiry (read from the verified payload).

A token is remembered by a 16-byte keyed digest of its header, not by the header itself (~300
characters): a token another one's digest collides with cannot be made without this process's
random key, and by chance it is a 2^-128 event per pair. The tokens live in two generations of
at most `max_tokens / 2` each: a token used again moves into the current one, and when that is
full the previous one is forgotten, so what is kept is bounded and what is still in use stays.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timedelta

from xfq.api.auth.tokens import Identity, TokenVerifier

MAX_TOKENS = 200_000
DIGEST_BYTES = 16


class CachedTokenVerifier:
    def __init__(self, verifier: TokenVerifier, max_tokens: int = MAX_TOKENS) -> None:
        assert max_tokens >= 2
        self._verifier = verifier
        self._per_generation = max_tokens // 2
        self._key = os.urandom(32)
        self._current: dict[bytes, tuple[Identity, float]] = {}  # digest -> identity, exp_s
        self._previous: dict[bytes, tuple[Identity, float]] = {}

    def verify(
        self, authorization_header: str | None, now: datetime, remember: bool = True
    ) -> Identity:
        """The header's identity (`AuthError` when it is not valid now).

        `remember=False` for a route a token is sent to once (the claim pass): it is checked
        against what is kept, but does not push out tokens that will be used again."""
        digest = self._digest(authorization_header or "")
        known = self._current.get(digest) or self._previous.pop(digest, None)
        if known is not None and now.timestamp() < known[1]:
            self._keep(digest, known)
            return known[0]
        identity = self._verifier.verify(authorization_header, now)  # raises when not valid
        assert authorization_header is not None
        if remember:
            self._keep(digest, (identity, _expiry_s(authorization_header, now)))
        return identity

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def _digest(self, header: str) -> bytes:
        raw = header.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(raw, digest_size=DIGEST_BYTES, key=self._key).digest()

    def _keep(self, digest: bytes, known: tuple[Identity, float]) -> None:
        if digest not in self._current and len(self._current) >= self._per_generation:
            self._previous, self._current = self._current, {}
        self._current[digest] = known


def _expiry_s(header: str, now: datetime) -> float:
    """The verified token's `exp`; a token whose payload cannot be read is kept one minute."""
    try:
        payload = header.split(" ", 1)[1].split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
        return float(exp)
    except (IndexError, ValueError, KeyError, TypeError):
        return (now + timedelta(minutes=1)).timestamp()
