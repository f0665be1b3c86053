"""The code a citizen shows at the till: a voucher, its holder and a short life, signed.

It refreshes every minute on the wallet page, so a screenshot is useless soon after, and it
cannot be made up without the server's key. Pure: HMAC from the standard library, time passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

PREFIX = "XFQ1"
DEFAULT_TTL = timedelta(seconds=90)
_SIG_BYTES = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CodeProblem(StrEnum):
    MALFORMED = "code_malformed"
    FORGED = "code_forged"
    EXPIRED = "code_expired"


@dataclass(frozen=True)
class TillCode:
    voucher_id: str
    person_id: str
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    mac = hmac.new(key, f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest()
    return _b64(mac[:_SIG_BYTES])


def issue_code(
    key: bytes, voucher_id: str, person_id: str, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> str:
    expires_s = int((now + ttl - _EPOCH).total_seconds())
    payload = _b64(f"{voucher_id}\n{person_id}\n{expires_s}".encode())
    return f"{PREFIX}.{payload}.{_signature(key, payload)}"


def read_code(key: bytes, code: str, now: datetime) -> TillCode | CodeProblem:
    """The voucher and holder a code names, or why it cannot be used."""
    if len(code) > 512 or not code.isascii():  # compare_digest refuses non-ASCII text
        return CodeProblem.MALFORMED
    parts = code.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        return CodeProblem.MALFORMED
    _, payload, signature = parts
    if not hmac.compare_digest(signature, _signature(key, payload)):
        return CodeProblem.FORGED
    try:
        voucher_id, person_id, expires_s = _unb64(payload).decode().split("\n")
        expires_at = _EPOCH + timedelta(seconds=int(expires_s))
    except (ValueError, OverflowError):  # signed by us: a bug or a changed key format
        return CodeProblem.MALFORMED
    if now >= expires_at:
        return CodeProblem.EXPIRED
    return TillCode(voucher_id, person_id, expires_at)
