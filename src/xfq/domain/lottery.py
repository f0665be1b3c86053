"""The lottery draw: a deterministic function anyone can re-run from the published files.

What is published, and when:
1. before registration closes: `seed_sha256`, the SHA-256 of the 32 secret seed bytes (hex);
2. when registration closes: the frozen registration list and its SHA-256;
3. at the draw: the seed itself (64 hex digits) and `draw.json` (inputs and winners).

The registration list is UTF-8 text, one registration a line: `PERSON_ID<TAB>TYPE_ID<LF>`,
lines sorted by (person id, type id) in code-point order, no duplicates, no other lines.
Its hash is the SHA-256 of exactly those bytes.

The draw, for one round:
1. Each registration (person P, type T) of round R gets a ticket:
   `SHA-256(seed_bytes || UTF-8("R" LF "T" LF "P"))`, 32 bytes.
2. Registrations are ordered by (ticket bytes, type id, person id), ascending.
3. Walking that order, a registration wins one voucher of T when all of these hold, and is
   skipped otherwise:
   - vouchers of T remain (`stock[T]` minus wins of T so far);
   - P's wins so far in this draw in T's category are below `per_category` (if set);
   - P's wins so far in this draw are below `per_round` (if set);
   - P's `prior_week` wins plus wins in this draw are below `max_wins_per_week` (if set);
   - P's `prior_campaign` wins plus wins in this draw are below `max_wins_per_campaign` (if set);
   - if P is in a household (`households[P]` names its head H): the wins so far in this draw of
     everyone whose head is H are below `per_household` (if set).
4. The winners are the winning (P, T) in walk order.

Nothing else (time, arrival order, randomness) enters the draw.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xfq.domain.errors import XfqError

FORMAT = "xfq-lottery-draw/1"
SEED_BYTES = 32


class LotteryFileError(XfqError):
    """A published lottery file cannot be read as one."""

    code = "lottery_file_invalid"


@dataclass(frozen=True, order=True)
class Registration:
    person_id: str
    type_id: str


@dataclass(frozen=True)
class DrawInput:
    """Everything the draw depends on besides the seed and the registration list."""

    campaign_id: str
    round_id: str
    stock: Mapping[str, int]  # vouchers of each type the draw may give
    categories: Mapping[str, str]  # type id -> category
    per_category: int | None
    per_round: int | None
    max_wins_per_week: int | None
    max_wins_per_campaign: int | None
    prior_week: Mapping[str, int] = field(default_factory=dict)  # person -> wins this week
    prior_campaign: Mapping[str, int] = field(default_factory=dict)  # person -> wins before
    per_household: int | None = None
    households: Mapping[str, str] = field(default_factory=dict)  # registrant -> head, at the draw


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_commitment(seed_hex: str) -> str:
    """The SHA-256 (hex) of the seed's 32 bytes: published before registration closes."""
    return sha256_hex(_seed_bytes(seed_hex))


def _seed_bytes(seed_hex: str) -> bytes:
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        raise LotteryFileError("the seed is not hexadecimal") from None
    if len(seed) != SEED_BYTES:
        raise LotteryFileError(f"the seed must be {SEED_BYTES} bytes (64 hex digits)")
    return seed


def valid_person_id(person_id: str) -> bool:
    """Tabs, line breaks and other control characters would break the list's format."""
    return bool(person_id) and all(ch.isprintable() for ch in person_id)


def registration_list(registrations: Iterable[Registration]) -> bytes:
    """The frozen list's canonical bytes (see the module's docstring)."""
    unique = sorted(set(registrations))
    for r in unique:
        assert valid_person_id(r.person_id) and valid_person_id(r.type_id), r
    return "".join(f"{r.person_id}\t{r.type_id}\n" for r in unique).encode()


def parse_registration_list(data: bytes) -> list[Registration]:
    """Read a published list; refuse anything that is not in canonical form."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise LotteryFileError("the registration list is not UTF-8 text") from None
    registrations = []
    for number, line in enumerate(text.splitlines(), start=1):
        person, tab, type_id = line.partition("\t")
        if not tab or "\t" in type_id or not person or not type_id:
            raise LotteryFileError(f"registration list line {number}: not PERSON<TAB>TYPE")
        registrations.append(Registration(person, type_id))
    if registration_list(registrations) != data:
        raise LotteryFileError(
            "the registration list is not in canonical form (sorted, unique, one per line)"
        )
    return registrations


def ticket(seed: bytes, round_id: str, registration: Registration) -> bytes:
    message = f"{round_id}\n{registration.type_id}\n{registration.person_id}".encode()
    return hashlib.sha256(seed + message).digest()


def draw(
    seed_hex: str, registrations: Iterable[Registration], given: DrawInput
) -> list[Registration]:
    """The winners, in draw order (see the module's docstring for the rule)."""
    seed = _seed_bytes(seed_hex)
    ordered = sorted(
        set(registrations),
        key=lambda r: (ticket(seed, given.round_id, r), r.type_id, r.person_id),
    )
    given_of_type: Counter[str] = Counter()
    of_category: Counter[tuple[str, str]] = Counter()
    of_person: Counter[str] = Counter()
    of_household: Counter[str] = Counter()
    winners = []
    for r in ordered:
        category = given.categories.get(r.type_id)
        if category is None or given_of_type[r.type_id] >= given.stock.get(r.type_id, 0):
            continue
        if not _within_caps(given, r.person_id, of_category[(r.person_id, category)], of_person):
            continue
        head = given.households.get(r.person_id)
        if head is not None and _at(given.per_household, of_household[head]):
            continue
        given_of_type[r.type_id] += 1
        of_category[(r.person_id, category)] += 1
        of_person[r.person_id] += 1
        if head is not None:
            of_household[head] += 1
        winners.append(r)
    assert all(given_of_type[t] <= given.stock.get(t, 0) for t in given_of_type)
    return winners


def _within_caps(given: DrawInput, person: str, in_category: int, of_person: Counter[str]) -> bool:
    wins = of_person[person]
    return not (
        _at(given.per_category, in_category)
        or _at(given.per_round, wins)
        or _at(given.max_wins_per_week, given.prior_week.get(person, 0) + wins)
        or _at(given.max_wins_per_campaign, given.prior_campaign.get(person, 0) + wins)
    )


def _at(cap: int | None, count: int) -> bool:
    return cap is not None and count >= cap


@dataclass(frozen=True)
class DrawRecord:
    """`draw.json`: the draw's inputs and its winners, as published."""

    given: DrawInput
    seed_hex: str
    seed_sha256: str
    registrations_sha256: str
    registrations: int
    winners: tuple[Registration, ...]

    def to_json(self) -> str:
        g = self.given
        data = {
            "format": FORMAT,
            "campaign": g.campaign_id,
            "round": g.round_id,
            "seed": self.seed_hex,
            "seed_sha256": self.seed_sha256,
            "registrations_sha256": self.registrations_sha256,
            "registrations": self.registrations,
            "stock": dict(sorted(g.stock.items())),
            "categories": dict(sorted(g.categories.items())),
            "limits": {
                "per_category": g.per_category,
                "per_round": g.per_round,
                "per_household": g.per_household,
            },
            "households": dict(sorted(g.households.items())),
            "caps": {"per_week": g.max_wins_per_week, "per_campaign": g.max_wins_per_campaign},
            "prior_wins": {
                p: {"week": g.prior_week.get(p, 0), "campaign": g.prior_campaign.get(p, 0)}
                for p in sorted(set(g.prior_week) | set(g.prior_campaign))
            },
            "winners": [[w.person_id, w.type_id] for w in self.winners],
        }
        return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def make_record(seed_hex: str, registrations: list[Registration], given: DrawInput) -> DrawRecord:
    return DrawRecord(
        given=given,
        seed_hex=seed_hex,
        seed_sha256=seed_commitment(seed_hex),
        registrations_sha256=sha256_hex(registration_list(registrations)),
        registrations=len(set(registrations)),
        winners=tuple(draw(seed_hex, registrations, given)),
    )


def parse_record(text: str) -> DrawRecord:
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise LotteryFileError(f"draw file format is not {FORMAT!r}")
        return _record(data)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise LotteryFileError(f"the draw file cannot be read: {error}") from None


def _record(data: dict[str, Any]) -> DrawRecord:
    prior = data["prior_wins"]
    given = DrawInput(
        campaign_id=str(data["campaign"]),
        round_id=str(data["round"]),
        stock={str(k): int(v) for k, v in data["stock"].items()},
        categories={str(k): str(v) for k, v in data["categories"].items()},
        per_category=_optional_int(data["limits"]["per_category"]),
        per_round=_optional_int(data["limits"]["per_round"]),
        max_wins_per_week=_optional_int(data["caps"]["per_week"]),
        max_wins_per_campaign=_optional_int(data["caps"]["per_campaign"]),
        prior_week={str(p): int(w["week"]) for p, w in prior.items()},
        prior_campaign={str(p): int(w["campaign"]) for p, w in prior.items()},
        per_household=_optional_int(data["limits"]["per_household"]),
        households={str(p): str(h) for p, h in data["households"].items()},
    )
    return DrawRecord(
        given=given,
        seed_hex=str(data["seed"]),
        seed_sha256=str(data["seed_sha256"]),
        registrations_sha256=str(data["registrations_sha256"]),
        registrations=int(data["registrations"]),
        winners=tuple(Registration(str(p), str(t)) for p, t in data["winners"]),
    )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


def verify(
    record: DrawRecord,
    registrations_file: bytes,
    commitment: str | None = None,
    registrations_sha256: str | None = None,
) -> list[Check]:
    """Re-run a published draw; each check says what it compared. All ok: the draw is honest.

    `commitment` and `registrations_sha256` are the hashes published earlier (the round page),
    when the verifier noted them; the draw file's own copies are compared with them.
    """
    list_hash = sha256_hex(registrations_file)
    checks = [
        _equal(
            "registration list matches its published hash", list_hash, record.registrations_sha256
        ),
    ]
    if registrations_sha256 is not None:
        checks.append(
            _equal(
                "draw file names the list hash published at freezing",
                record.registrations_sha256,
                registrations_sha256.lower(),
            )
        )
    try:
        revealed = seed_commitment(record.seed_hex)
    except LotteryFileError as error:
        return [*checks, Check("seed matches its commitment", False, str(error))]
    checks.append(_equal("seed matches its commitment", revealed, record.seed_sha256))
    if commitment is not None:
        checks.append(
            _equal(
                "draw file names the commitment published before registration closed",
                record.seed_sha256,
                commitment.lower(),
            )
        )
    try:
        registrations = parse_registration_list(registrations_file)
    except LotteryFileError as error:
        return [*checks, Check("winners re-drawn", False, str(error))]
    winners = tuple(draw(record.seed_hex, registrations, record.given))
    checks.append(_winners(winners, record.winners))
    return checks


def _equal(what: str, found: str, expected: str) -> Check:
    if found == expected:
        return Check(what, True, found)
    return Check(what, False, f"computed {found}, published {expected}")


def _winners(drawn: tuple[Registration, ...], published: tuple[Registration, ...]) -> Check:
    what = "winners re-drawn match the published winners"
    if drawn == published:
        return Check(what, True, f"{len(drawn)} winner(s), same order")
    only_drawn = sorted(set(drawn) - set(published))
    only_published = sorted(set(published) - set(drawn))
    detail = (
        f"re-drawn {len(drawn)}, published {len(published)}; "
        f"{len(only_published)} published winner(s) not drawn"
        + (
            f" (first: {only_published[0].person_id} {only_published[0].type_id})"
            if only_published
            else ""
        )
        + f", {len(only_drawn)} drawn winner(s) not published"
        + ("" if only_drawn or only_published else "; order differs")
    )
    return Check(what, False, detail)
