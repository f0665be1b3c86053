"""Merchants' signed requests: a till's genuine request passes once; tampering and replays don't."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta

import pytest

from xfq.api.auth.merchant_signature import (
    InMemoryNonceStore,
    NonceStoreFull,
    SignatureCode,
    SignatureError,
    SignatureVerifier,
    sign,
    signed_headers,
)

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
PATH = "/merchant/v1/redemptions?dry_run=1"
BODY = b'{"voucher_code":"XFQ1.abc","order_fen":12000}'
NONCE = "n0nce-0000000000000001"
KEYS = {"mk_shop1": (SECRET, "m-1"), "mk_shop2": (OTHER_SECRET, "m-2")}


def _verifier(nonce_capacity: int = 100_000) -> SignatureVerifier:
    return SignatureVerifier(KEYS, nonce_capacity=nonce_capacity)


def _headers(
    key_id: str = "mk_shop1",
    secret: bytes = SECRET,
    at: datetime = NOW,
    nonce: str | None = None,
) -> dict[str, str]:
    return signed_headers(key_id, secret, "POST", PATH, BODY, at, nonce)


def _refusal(
    verifier: SignatureVerifier,
    headers: dict[str, str],
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    now: datetime = NOW,
) -> str:
    with pytest.raises(SignatureError) as refused:
        verifier.verify(headers, method, path, body, now)
    return refused.value.code


# --- what passes ---------------------------------------------------------------------------


def test_a_till_s_signed_request_is_from_its_merchant() -> None:
    verifier = _verifier()

    assert verifier.verify(_headers(), "POST", PATH, BODY, NOW) == "m-1"
    assert verifier.verify(_headers("mk_shop2", OTHER_SECRET), "POST", PATH, BODY, NOW) == "m-2"


def test_the_signature_is_hmac_sha256_of_the_documented_canonical_string() -> None:
    canonical = f"POST\n{PATH}\n1740823200\n{NONCE}\n{hashlib.sha256(BODY).hexdigest()}"
    expected = hmac.new(SECRET, canonical.encode(), hashlib.sha256).hexdigest()

    assert sign(SECRET, "post", PATH, 1740823200, NONCE, BODY) == expected


def test_header_names_and_signature_hex_are_case_insensitive() -> None:
    headers = {name.lower(): value for name, value in _headers().items()}
    headers["x-xfq-signature"] = headers["x-xfq-signature"].upper()

    assert _verifier().verify(headers, "POST", PATH, BODY, NOW) == "m-1"


@pytest.mark.parametrize("offset_s", [-300, 300])
def test_a_till_clock_up_to_five_minutes_off_is_tolerated(offset_s: int) -> None:
    headers = _headers(at=NOW + timedelta(seconds=offset_s))

    assert _verifier().verify(headers, "POST", PATH, BODY, NOW) == "m-1"


# --- tampering -----------------------------------------------------------------------------


def test_a_request_whose_body_was_changed_is_refused() -> None:
    tampered = BODY.replace(b"12000", b"99000")

    assert _refusal(_verifier(), _headers(), body=tampered) == SignatureCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    "path", ["/merchant/v1/redemptions", "/merchant/v1/reversals?dry_run=1", PATH + "&x=1"]
)
def test_a_request_sent_to_another_path_or_query_is_refused(path: str) -> None:
    assert _refusal(_verifier(), _headers(), path=path) == "bad_signature"


def test_a_request_replayed_with_another_method_is_refused() -> None:
    assert _refusal(_verifier(), _headers(), method="PUT") == "bad_signature"


def test_a_request_signed_with_another_merchant_s_secret_is_refused() -> None:
    assert _refusal(_verifier(), _headers("mk_shop1", OTHER_SECRET)) == "bad_signature"


@pytest.mark.parametrize("signature", ["zz" * 32, "ab" * 31, "é" * 64])
def test_a_signature_that_is_not_64_hex_digits_is_refused(signature: str) -> None:
    headers = _headers() | {"X-Xfq-Signature": signature}

    assert _refusal(_verifier(), headers) == "bad_signature"


def test_an_unknown_api_key_is_refused() -> None:
    assert _refusal(_verifier(), _headers("mk_gone")) == SignatureCode.UNKNOWN_KEY


@pytest.mark.parametrize(
    "header", ["X-Xfq-Key", "X-Xfq-Timestamp", "X-Xfq-Nonce", "X-Xfq-Signature"]
)
def test_a_request_missing_a_signature_header_is_refused_naming_it(header: str) -> None:
    headers = _headers()
    del headers[header]

    with pytest.raises(SignatureError) as refused:
        _verifier().verify(headers, "POST", PATH, BODY, NOW)

    assert refused.value.code == "missing_signature_headers"
    assert refused.value.status == 401
    assert header in refused.value.detail


# --- time ----------------------------------------------------------------------------------


def test_a_request_signed_more_than_five_minutes_ago_is_refused_as_stale() -> None:
    headers = _headers(at=NOW - timedelta(seconds=301))

    assert _refusal(_verifier(), headers) == SignatureCode.STALE_TIMESTAMP


def test_a_request_dated_more_than_five_minutes_ahead_is_refused() -> None:
    headers = _headers(at=NOW + timedelta(seconds=301))

    assert _refusal(_verifier(), headers) == SignatureCode.FUTURE_TIMESTAMP


@pytest.mark.parametrize("timestamp", ["soon", "-5", "1.5", " 1740823200", "1740823200\n", "١٢٣"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(timestamp: str) -> None:
    headers = _headers() | {"X-Xfq-Timestamp": timestamp}

    assert _refusal(_verifier(), headers) == SignatureCode.MALFORMED_TIMESTAMP


# --- nonces --------------------------------------------------------------------------------


def test_a_replayed_request_is_refused_while_a_new_nonce_passes() -> None:
    verifier = _verifier()
    first = _headers(nonce=NONCE)
    verifier.verify(first, "POST", PATH, BODY, NOW)

    later = NOW + timedelta(seconds=10)
    assert _refusal(verifier, first, now=later) == SignatureCode.REPLAYED_NONCE
    assert verifier.verify(_headers(at=later), "POST", PATH, BODY, later) == "m-1"


def test_a_replay_after_the_window_is_refused_as_stale() -> None:
    verifier = _verifier()
    first = _headers(nonce=NONCE)
    verifier.verify(first, "POST", PATH, BODY, NOW)

    assert _refusal(verifier, first, now=NOW + timedelta(minutes=6)) == "stale_timestamp"


def test_two_merchants_may_happen_to_pick_the_same_nonce() -> None:
    verifier = _verifier()
    verifier.verify(_headers(nonce=NONCE), "POST", PATH, BODY, NOW)

    other = _headers("mk_shop2", OTHER_SECRET, nonce=NONCE)
    assert verifier.verify(other, "POST", PATH, BODY, NOW) == "m-2"


def test_a_refused_forgery_does_not_burn_the_genuine_request_s_nonce() -> None:
    verifier = _verifier()
    forged = _headers(secret=OTHER_SECRET, nonce=NONCE)
    assert _refusal(verifier, forged) == "bad_signature"

    assert verifier.verify(_headers(nonce=NONCE), "POST", PATH, BODY, NOW) == "m-1"


@pytest.mark.parametrize("nonce", ["short", "a" * 65, "has/slash/0000000", "has space 0000000"])
def test_a_nonce_that_is_not_16_to_64_url_safe_characters_is_refused(nonce: str) -> None:
    assert _refusal(_verifier(), _headers(nonce=nonce)) == SignatureCode.MALFORMED_NONCE


def test_the_same_request_sent_by_many_threads_at_once_passes_exactly_once() -> None:
    verifier = _verifier()
    headers = _headers(nonce=NONCE)
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def send() -> None:
        start.wait()
        try:
            outcomes.append(verifier.verify(headers, "POST", PATH, BODY, NOW))
        except SignatureError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["m-1"] + ["replayed_nonce"] * 15


# --- the nonce store's bound ---------------------------------------------------------------


def test_a_full_nonce_store_refuses_new_requests_rather_than_forget_live_nonces() -> None:
    verifier = _verifier(nonce_capacity=3)
    sent = [_headers(nonce=f"nonce-{i:016d}") for i in range(3)]
    for headers in sent:
        verifier.verify(headers, "POST", PATH, BODY, NOW)

    with pytest.raises(NonceStoreFull) as full:
        verifier.verify(_headers(), "POST", PATH, BODY, NOW + timedelta(seconds=1))

    assert (full.value.status, full.value.code) == (429, "nonce_store_full")
    assert full.value.retry_after_s == 299
    assert _refusal(verifier, sent[0]) == "replayed_nonce"


def test_room_returns_once_the_remembered_nonces_expire() -> None:
    verifier = _verifier(nonce_capacity=3)
    for i in range(3):
        verifier.verify(_headers(nonce=f"nonce-{i:016d}"), "POST", PATH, BODY, NOW)

    later = NOW + timedelta(minutes=5, seconds=1)
    assert verifier.verify(_headers(at=later), "POST", PATH, BODY, later) == "m-1"


def test_the_store_forgets_only_what_has_expired() -> None:
    store = InMemoryNonceStore(capacity=10)
    store.remember("k", "early", expires_at_s=100, now_s=0)
    store.remember("k", "late", expires_at_s=200, now_s=0)

    assert store.remember("k", "other", expires_at_s=300, now_s=150) is True
    assert len(store) == 2
    assert store.remember("k", "late", expires_at_s=400, now_s=200) is False
    assert store.remember("k", "early", expires_at_s=400, now_s=200) is True


# --- configuration -------------------------------------------------------------------------


def test_a_key_with_a_short_secret_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="32-byte secret"):
        SignatureVerifier({"mk_weak": (b"password", "m-1")})


def test_keys_added_after_start_are_honoured_and_removed_keys_refused() -> None:
    keys: dict[str, tuple[bytes, str]] = {}
    verifier = SignatureVerifier(keys)
    keys["mk_shop1"] = (SECRET, "m-1")
    assert verifier.verify(_headers(), "POST", PATH, BODY, NOW) == "m-1"

    del keys["mk_shop1"]
    assert _refusal(verifier, _headers()) == "unknown_key"
