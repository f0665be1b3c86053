"""Who may claim: residency kinds and presence in the city, taken from identity claims."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Residency(StrEnum):
    PERMANENT = "permanent"
    WORK = "work"
    STUDY = "study"
    VISIT = "visit"


@dataclass(frozen=True)
class Citizen:
    """What xfq knows of a claimant at the moment of a claim (from the identity provider)."""

    person_id: str
    residency: Residency | None
    in_city: bool
    district: str | None = None  # where they live, for types split by district


@dataclass(frozen=True)
class Eligibility:
    residencies: frozenset[Residency]
    require_in_city: bool

    def refusal(self, citizen: Citizen) -> str | None:
        """Why `citizen` may not claim, or None when they may."""
        if citizen.residency is None:
            return "no residency kind is known for this person"
        if citizen.residency not in self.residencies:
            allowed = ", ".join(sorted(self.residencies))
            return f"residency '{citizen.residency}' is not eligible (eligible: {allowed})"
        if self.require_in_city and not citizen.in_city:
            return "the claim must be made from inside the city"
        return None
