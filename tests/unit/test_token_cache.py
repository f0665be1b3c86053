"""The token cache: a token is verified once, trusted until it expires, and what is kept is
bounded."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from xfq.api.auth.dev_issuer import DevIssuer
from xfq.api.auth.tokens import Identity, Role, TokenError, TokenVerifier
from xfq.api.token_cache import CachedTokenVerifier

NOW = datetime(2022, 3, 5, 1, 0, tzinfo=UTC)
ISSUER = DevIssuer(environment="development")


class CountingVerifier(TokenVerifier):
    """The real verifier, counting the signature checks it makes."""

    def __init__(self) -> None:
        super().__init__([ISSUER.trusted()])
        self.checked = 0

    def verify(self, authorization_header: str | None, now: datetime) -> Identity:
        self.checked += 1
        return super().verify(authorization_header, now)


def _header(subject: str, ttl: timedelta = timedelta(hours=1)) -> str:
    return f"Bearer {ISSUER.token(subject, Role.CITIZEN, NOW, ttl=ttl)}"


def test_a_token_is_checked_once_then_trusted_until_it_expires() -> None:
    verifier = CountingVerifier()
    cache = CachedTokenVerifier(verifier)
    alice = _header("alice", ttl=timedelta(minutes=10))

    first = cache.verify(alice, NOW)
    again = cache.verify(alice, NOW + timedelta(minutes=9))

    assert first == again and first.subject == "alice"
    assert verifier.checked == 1
    with pytest.raises(TokenError) as refused:
        cache.verify(alice, NOW + timedelta(minutes=11))
    assert refused.value.code == "token_expired"


def test_a_token_differing_from_a_kept_one_by_a_character_is_checked_and_refused() -> None:
    cache = CachedTokenVerifier(CountingVerifier())
    alice = _header("alice")
    cache.verify(alice, NOW)
    forged = alice[:-2] + ("A" if alice[-2] != "A" else "B") + alice[-1]

    with pytest.raises(TokenError) as refused:
        cache.verify(forged, NOW)

    assert refused.value.code == "bad_signature"


def test_a_token_verified_without_remembering_is_not_kept() -> None:
    verifier = CountingVerifier()
    cache = CachedTokenVerifier(verifier)
    alice, bob = _header("alice"), _header("bob")
    cache.verify(bob, NOW)

    cache.verify(alice, NOW, remember=False)
    cache.verify(alice, NOW, remember=False)
    cache.verify(bob, NOW, remember=False)  # kept before: answered from the cache

    assert verifier.checked == 3
    assert len(cache) == 1


def test_the_cache_is_bounded_and_keeps_a_token_in_use() -> None:
    verifier = CountingVerifier()
    cache = CachedTokenVerifier(verifier, max_tokens=4)
    alice = _header("alice")
    cache.verify(alice, NOW)

    for i in range(20):
        cache.verify(_header(f"p{i}"), NOW)
        cache.verify(alice, NOW)
        assert len(cache) <= 4

    assert verifier.checked == 21  # alice once, each other person once


def test_five_thousand_kept_tokens_take_under_300_bytes_each() -> None:
    """The headers (~300 characters each, made anew by each request) are not kept, only a digest
    and the identity (keeping the headers took ~640 bytes a token)."""
    tokens = [ISSUER.token(f"p{i:07d}", Role.CITIZEN, NOW) for i in range(5_000)]
    cache = CachedTokenVerifier(TokenVerifier([ISSUER.trusted()]))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for token in tokens:
            cache.verify(f"Bearer {token}", NOW)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert len(cache) == len(tokens)
    assert held < 300 * len(tokens), f"{held / len(tokens):.0f} bytes a token"
