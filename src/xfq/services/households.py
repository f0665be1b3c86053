"""Household wallets: a head declares the people of their household (at most five in all)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from xfq.domain.errors import XfqError
from xfq.domain.lottery import valid_person_id
from xfq.ports import HouseholdStore

MAX_HOUSEHOLD = 5  # people, the head included (as Taiwan's family binding allows)


class HouseholdRefused(XfqError):
    code = "household_refused"


class HouseholdCounter(Protocol):
    def join_household(self, head_id: str, members: list[str]) -> None: ...


def declare_household(
    store: HouseholdStore,
    engine: HouseholdCounter,
    head_id: str,
    members: list[str],
    now: datetime,
) -> list[str]:
    """Add `members` to `head_id`'s household; the whole household afterwards.

    Membership is final: a person who could leave one household and join another could claim
    again under a second cap.
    """
    people = list(dict.fromkeys([head_id, *members]))
    bad = [p for p in people if not valid_person_id(p) or len(p) > 64]
    if bad:
        raise HouseholdRefused(f"not a person id: {bad[0]!r}")
    together = set(store.members(head_id)) | set(people)
    if len(together) > MAX_HOUSEHOLD:
        raise HouseholdRefused(
            f"a household has at most {MAX_HOUSEHOLD} people, the head included;"
            f" this would make {len(together)}"
        )
    taken = store.add_members(head_id, people, now)
    if taken:
        raise HouseholdRefused(f"already in another household: {', '.join(taken)}")
    engine.join_household(head_id, people)
    return store.members(head_id)
