"""A waiting room in front of a grab round: fair order at the opening second, then first come.

People who arrive before the round opens (within `opens_before`) are put in a random order at
the opening second: by HMAC-SHA256(key, round id LF person id), so the order cannot be gamed by
arriving early, cannot be predicted without the server's key, and is the same every time it is
asked (also after a restart). Those who arrive later queue behind them in arrival order.
The room admits `admit_per_second` places per second from the opening second on; an admitted
person gets a short-lived signed token that the claim endpoint checks and accepts once.
Pure: the time is passed in; the caller keeps the state.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from xfq.domain.sealed import SealProblem, seal, unseal

TOKEN_PREFIX = "XFQW1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class WaitingRoomRules:
    opens_before: timedelta  # how long before the round opens people may join
    admit_per_second: int
    token_ttl: timedelta


@dataclass(frozen=True)
class Place:
    """Where a person stands: `place` is None until the opening second draws the early order."""

    place: int | None
    admitted: bool
    ahead: int | None  # people before them still waiting


@dataclass
class WaitingRoom:
    """One round's queue (state in memory; see the module's docstring for the rules)."""

    key: bytes
    round_id: str
    opens_at: datetime
    rules: WaitingRoomRules
    _early: set[str] = field(default_factory=set)
    _late: dict[str, int] = field(default_factory=dict)  # person -> arrival number after opening
    _order: dict[str, int] | None = None  # early person -> place, drawn at the opening second

    def join(self, person_id: str, now: datetime) -> Place:
        """Join (a repeat keeps one's place); refused before the room opens."""
        if now < self.opens_at - self.rules.opens_before:
            raise ValueError(
                f"the waiting room opens at {(self.opens_at - self.rules.opens_before).isoformat()}"
            )
        if person_id not in self._early and person_id not in self._late:
            if now < self.opens_at:
                self._early.add(person_id)
            else:
                self._late[person_id] = len(self._late)
        return self.where(person_id, now)

    def where(self, person_id: str, now: datetime) -> Place:
        if now < self.opens_at:
            return Place(None, False, None)
        place = self._place(person_id)
        if place is None:
            raise KeyError(person_id)
        admitted_count = self.admitted_count(now)
        return Place(place, place <= admitted_count, max(0, place - 1 - admitted_count))

    def admitted_count(self, now: datetime) -> int:
        """How many places are admitted by `now`: a batch each second, from the opening one."""
        if now < self.opens_at:
            return 0
        seconds = int((now - self.opens_at).total_seconds())
        return (seconds + 1) * self.rules.admit_per_second

    def _place(self, person_id: str) -> int | None:
        if self._order is None:  # the opening second's draw, made once
            ranked = sorted(self._early, key=lambda p: (self.rank(p), p))
            self._order = {p: n for n, p in enumerate(ranked, start=1)}
        if person_id in self._order:
            return self._order[person_id]
        if person_id in self._late:
            return len(self._order) + self._late[person_id] + 1
        return None

    @property
    def drawn(self) -> bool:
        return self._order is not None

    def rank(self, person_id: str) -> bytes:
        return hmac.new(self.key, f"{self.round_id}\n{person_id}".encode(), "sha256").digest()


class TokenProblem(StrEnum):
    MALFORMED = "admission_malformed"
    FORGED = "admission_forged"
    EXPIRED = "admission_expired"
    OTHER = "admission_not_yours"  # for another person or round
    USED = "admission_used"


@dataclass(frozen=True)
class Admission:
    token_id: str
    round_id: str
    person_id: str
    expires_at: datetime


def issue_token(
    key: bytes, token_id: str, round_id: str, person_id: str, expires_at: datetime
) -> str:
    expires_s = int((expires_at - _EPOCH).total_seconds())
    return seal(key, TOKEN_PREFIX, [token_id, round_id, person_id, str(expires_s)])


def read_token(
    key: bytes, token: str, round_id: str, person_id: str, now: datetime
) -> Admission | TokenProblem:
    """The admission a token grants this person for this round now, or why it does not."""
    fields = unseal(key, TOKEN_PREFIX, token.strip(), 4)
    if isinstance(fields, SealProblem):
        return TokenProblem.FORGED if fields is SealProblem.FORGED else TokenProblem.MALFORMED
    token_id, token_round, token_person, expires_s = fields
    try:
        expires_at = _EPOCH + timedelta(seconds=int(expires_s))
    except (ValueError, OverflowError):  # signed by us: a bug or a changed key format
        return TokenProblem.MALFORMED
    if (token_round, token_person) != (round_id, person_id):
        return TokenProblem.OTHER
    if now >= expires_at:
        return TokenProblem.EXPIRED
    return Admission(token_id, token_round, token_person, expires_at)
