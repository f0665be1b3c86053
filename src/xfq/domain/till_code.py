"""The code a citizen shows at the till: a voucher, its holder and a short life, signed.

It refreshes every minute on the wallet page, so a screenshot is useless soon after, and it
cannot be made up without the server's key. Pure: HMAC from the standard library, time passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from xfq.domain.sealed import SealProblem, seal, unseal

PREFIX = "XFQ1"
DEFAULT_TTL = timedelta(seconds=90)
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


def issue_code(
    key: bytes, voucher_id: str, person_id: str, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> str:
    expires_s = int((now + ttl - _EPOCH).total_seconds())
    return seal(key, PREFIX, [voucher_id, person_id, str(expires_s)])


def read_code(key: bytes, code: str, now: datetime) -> TillCode | CodeProblem:
    """The voucher and holder a code names, or why it cannot be used."""
    fields = unseal(key, PREFIX, code.strip(), 3)
    if isinstance(fields, SealProblem):
        return CodeProblem.FORGED if fields is SealProblem.FORGED else CodeProblem.MALFORMED
    voucher_id, person_id, expires_s = fields
    try:
        expires_at = _EPOCH + timedelta(seconds=int(expires_s))
    except (ValueError, OverflowError):  # signed by us: a bug or a changed key format
        return CodeProblem.MALFORMED
    if now >= expires_at:
        return CodeProblem.EXPIRED
    return TillCode(voucher_id, person_id, expires_at)
