"""The claim pass: a citizen's identity for one round, checked in microseconds at the opening.

Verifying an identity provider's Ed25519 token costs ~0.24 ms of CPU, and at the opening
second every claimer is a new person. So in the minutes before, a citizen's wallet trades its
bearer token (verified once, then) for a pass that the server signs with a key of its own:

    XFQP1.<key id>.<base64url(round LF person LF residency LF in_city LF district LF exp)>.<mac>

(the sealed-token format of `xfq.domain.sealed`). A pass binds one person to one round,
carries what the claim decision reads of the person (residency, presence in the city, district,
as the identity provider asserted them when the pass was made) and expires by the server's clock
(`exp`, Unix seconds) shortly after the round's claim window, or after `lifetime`, whichever is
first. The key id names which of the server's keys signed it: the first key signs, every listed
key verifies, so keys rotate without refusing passes already handed out. Pure: time passed in.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.sealed import SealProblem, head_of, seal, unseal

PREFIX = "XFQP1"
_FIELDS = 6
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RESIDENCIES = {r.value: r for r in Residency}


class PassProblem(StrEnum):
    MALFORMED = "pass_malformed"
    FORGED = "pass_forged"
    UNKNOWN_KEY = "pass_key_unknown"  # signed with a key this server no longer (or never) held
    EXPIRED = "pass_expired"
    OTHER_ROUND = "pass_other_round"


@dataclass(frozen=True)
class PassRules:
    lead: timedelta  # how long before a round opens its passes may be had
    lifetime: timedelta  # the longest a pass lives
    grace: timedelta  # how long after the claim window closes a pass still reads


class ClaimPass(NamedTuple):  # a tuple: read on every claim, ~6k instructions less to make
    round_id: str
    citizen: Citizen
    expires_s: int  # Unix seconds; the pass is refused from this second on

    def refusal_for(self, round_id: str) -> PassProblem | None:
        return None if round_id == self.round_id else PassProblem.OTHER_ROUND


class PassKeys:
    """The server's pass keys, newest first: the first signs, all verify."""

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("at least one claim-pass key is needed")
        self._by_id = {key_id(s): s for s in secrets}
        if len(self._by_id) != len(secrets):
            raise ValueError("two claim-pass keys are the same")
        self.signing_id, self.signing_key = key_id(secrets[0]), secrets[0]

    def key(self, kid: str) -> bytes | None:
        return self._by_id.get(kid)


def key_id(secret: bytes) -> str:
    """A short public name for a key: a one-way hash of it, so no configuration names keys."""
    digest = hashlib.sha256(b"xfq claim pass key id\n" + secret).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode("ascii")


def issuing_refusal(
    opens_at: datetime, closes_at: datetime, now: datetime, rules: PassRules
) -> str | None:
    """Why no pass for a round with this claim window is handed out now, or None."""
    if now < opens_at - rules.lead:
        return f"passes for this round are handed out from {(opens_at - rules.lead).isoformat()}"
    if now >= closes_at:
        return "this round's claim window has closed"
    return None


def expiry(closes_at: datetime, now: datetime, rules: PassRules) -> datetime:
    """When a pass made now lapses: shortly after the window, or at the end of its lifetime."""
    lapses = min(closes_at + rules.grace, now + rules.lifetime)
    return _EPOCH + timedelta(seconds=int((lapses - _EPOCH).total_seconds()))  # whole seconds


def issue_pass(keys: PassKeys, round_id: str, citizen: Citizen, expires_at: datetime) -> str:
    """The pass; ValueError when a field holds a line feed (it would not read back)."""
    expires_s = int((expires_at - _EPOCH).total_seconds())
    fields = [
        round_id,
        citizen.person_id,
        citizen.residency.value if citizen.residency else "",
        "1" if citizen.in_city else "0",
        citizen.district or "",
        str(expires_s),
    ]
    return seal(keys.signing_key, f"{PREFIX}.{keys.signing_id}", fields)


def read_pass(keys: PassKeys, token: str, now: datetime) -> ClaimPass | PassProblem:
    """What a pass grants now (its round is checked by `ClaimPass.refusal_for`), or why not."""
    head = head_of(token)
    if head is None or not head.startswith(PREFIX + "."):
        return PassProblem.MALFORMED
    key = keys.key(head[len(PREFIX) + 1 :])
    if key is None:
        return PassProblem.UNKNOWN_KEY
    fields = unseal(key, head, token, _FIELDS)
    if isinstance(fields, SealProblem):
        return PassProblem.FORGED if fields is SealProblem.FORGED else PassProblem.MALFORMED
    round_id, person_id, residency, in_city, district, expires_text = fields
    if not expires_text.isdigit() or (residency and residency not in _RESIDENCIES):
        return PassProblem.MALFORMED  # signed by us: a bug or a changed format
    expires_s = int(expires_text)
    if now.timestamp() >= expires_s:
        return PassProblem.EXPIRED
    citizen = Citizen(person_id, _RESIDENCIES.get(residency), in_city == "1", district or None)
    return ClaimPass(round_id, citizen, expires_s)
