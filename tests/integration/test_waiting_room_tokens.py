"""Admission tokens under contention: many requests with one token at once, exactly one passes."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

import spec_text
from xfq.adapters.ids import RandomIds
from xfq.services.waiting_room import AdmissionRefused, WaitingRooms
from xfq.spec import parse_campaign

ROOM = "\n[rounds.waiting_room]\nopens_before_minutes = 5\nadmit_per_second = 10\n"
CAMPAIGN = parse_campaign(
    spec_text.campaign("room", "Room")
    + spec_text.round_(extra=ROOM)
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 10),
    "room.toml",
)
OPENS_AT = CAMPAIGN.round("r1").opens_at


def test_one_token_sent_by_many_threads_at_once_admits_one_claim() -> None:
    rooms = WaitingRooms(CAMPAIGN, b"k" * 32, RandomIds())
    rooms.join("r1", "alice", OPENS_AT - timedelta(minutes=1))
    token = rooms.standing("r1", "alice", OPENS_AT).token
    assert token is not None
    workers = 8
    start = threading.Barrier(workers)

    def use(_: int) -> str:
        start.wait(10)
        try:
            rooms.admit("r1-retail-30-6", "alice", token, OPENS_AT)
        except AdmissionRefused as refused:
            return refused.code
        return "admitted"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = Counter(pool.map(use, range(workers)))
    assert outcomes == {"admitted": 1, "admission_used": workers - 1}


def test_opening_a_round_early_moves_its_rooms_opening_second() -> None:
    rooms = WaitingRooms(CAMPAIGN, b"k" * 32, RandomIds())
    early = OPENS_AT - timedelta(minutes=30)
    rooms.move_opening("r1", early)
    rooms.join("r1", "bob", early - timedelta(minutes=1))
    standing = rooms.standing("r1", "bob", early)
    assert standing.place.place == 1 and standing.token is not None
    with pytest.raises(AdmissionRefused, match="Admission header"):
        rooms.admit("r1-retail-30-6", "bob", None, early)
