"""The waiting rooms of a campaign's grab rounds: joining, places, admission tokens.

State is in this process's memory, like the embedded engine's counters: one process serves a
ledger. The early order survives a restart (it is keyed, not stored); places of people who came
after opening and tokens already used do not, so a restart re-queues late arrivals.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from datetime import datetime

from xfq.domain.campaign import Campaign
from xfq.domain.errors import UnknownObject, XfqError
from xfq.domain.waiting_room import (
    Place,
    TokenProblem,
    WaitingRoom,
    issue_token,
    read_token,
)
from xfq.ports import IdSource

MAX_USED_TOKENS = 2_000_000  # a bound on memory; expired ones are dropped first


class NotInRoom(XfqError):
    code = "waiting_room_refused"


class AdmissionRefused(XfqError):
    """A claim on a round behind a waiting room came without a valid, unused admission."""

    def __init__(self, problem: TokenProblem | str, detail: str) -> None:
        self.code = str(problem)
        super().__init__(detail)


@dataclass(frozen=True)
class Standing:
    round_id: str
    opens_at: datetime
    place: Place
    token: str | None
    token_expires_at: datetime | None


class WaitingRooms:
    def __init__(self, campaign: Campaign, key: bytes, ids: IdSource) -> None:
        self._key = hmac.new(key, b"xfq waiting room", hashlib.sha256).digest()
        self._ids = ids
        self._rooms = {
            r.id: WaitingRoom(self._key, r.id, r.opens_at, r.waiting_room)
            for r in campaign.rounds
            if r.waiting_room is not None
        }
        self.round_of_type = {
            t.id: r.id for r in campaign.rounds if r.id in self._rooms for t in r.types
        }
        self._used: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def _room(self, round_id: str) -> WaitingRoom:
        room = self._rooms.get(round_id)
        if room is None:
            raise UnknownObject(f"round {round_id} has no waiting room")
        return room

    def move_opening(self, round_id: str, opens_at: datetime) -> None:
        """Follow an operator opening the round early (before its early order was drawn)."""
        room = self._rooms.get(round_id)
        with self._lock:
            if room is not None and not room.drawn:
                room.opens_at = opens_at

    def join(self, round_id: str, person_id: str, now: datetime) -> Standing:
        room = self._room(round_id)
        with self._lock:
            try:
                room.join(person_id, now)
            except ValueError as error:
                raise NotInRoom(str(error)) from None
        return self.standing(round_id, person_id, now)

    def standing(self, round_id: str, person_id: str, now: datetime) -> Standing:
        """Where the person stands; admitted: with a fresh token for one claim."""
        room = self._room(round_id)
        with self._lock:
            try:
                place = room.where(person_id, now)
            except KeyError:
                raise NotInRoom("join the waiting room first") from None
        if not place.admitted:
            return Standing(round_id, room.opens_at, place, None, None)
        expires_at = now + room.rules.token_ttl
        token = issue_token(self._key, self._ids.new_id("w"), round_id, person_id, expires_at)
        return Standing(round_id, room.opens_at, place, token, expires_at)

    def admit(self, type_id: str, person_id: str, token: str | None, now: datetime) -> None:
        """Let a claim of `type_id` through, using up its token; else `AdmissionRefused`."""
        round_id = self.round_of_type.get(type_id)
        if round_id is None:
            return  # this type's round has no waiting room
        if not token:
            raise AdmissionRefused(
                TokenProblem.MALFORMED,
                f"round {round_id} has a waiting room: join it and send its token in the"
                " Admission header",
            )
        read = read_token(self._key, token, round_id, person_id, now)
        if isinstance(read, TokenProblem):
            raise AdmissionRefused(read, f"the admission token was refused: {read}")
        with self._lock:
            if read.token_id in self._used:
                raise AdmissionRefused(TokenProblem.USED, "this admission token was used already")
            if len(self._used) >= MAX_USED_TOKENS:
                self._used = {k: t for k, t in self._used.items() if t > now}
            self._used[read.token_id] = read.expires_at
