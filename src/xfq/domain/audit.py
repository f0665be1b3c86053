"""The audit trail: an append-only chain of entries, each sealed by a SHA-256 hash that covers
the previous entry's hash, and a daily digest a city can publish.

Anyone holding the log can recompute every hash: an edited, deleted, reordered or inserted entry
breaks the chain at a sequence number. Cutting entries off the end leaves a shorter chain that
is still valid on its own; only a digest published earlier (its last sequence number and hash)
shows that entries are missing, which is why the digest exists.

The canonical encoding is JSON with sorted keys, no spaces, UTF-8, and no floats (money is fen),
so any language's JSON library can reproduce it byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from xfq.domain.errors import XfqError

GENESIS_HASH = "0" * 64
MAX_DETAILS_BYTES = 16_384
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class AuditDetailsInvalid(XfqError):
    """Details of an audit entry that cannot be encoded canonically (a float, a set, ...)."""

    code = "audit_details_invalid"


class UnknownAuditAction(XfqError):
    code = "audit_action_unknown"


# The actions the trail knows; a typo in a caller must not start a new kind of entry.
ACTIONS = frozenset(
    {
        "campaign.imported",
        "round.opened",
        "round.cancelled",
        "merchant.enrolled",
        "merchant.approved",
        "merchant.suspended",
        "merchant.reinstated",
        "merchant.key_revoked",
        "flag.confirmed",
        "flag.dismissed",
        "settlement.closed",
        "rollover",
    }
)


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditDetailsInvalid(f"{where}: key {key!r} is not text")
            _check_value(item, f"{where}.{key}")
        return
    raise AuditDetailsInvalid(
        f"{where}: {type(value).__name__} cannot be audited (text, integers, booleans, "
        "lists and objects only; money in fen)"
    )


def canonical_json(value: Any) -> str:
    """The one encoding hashed and stored: sorted keys, no spaces, UTF-8 text, no floats."""
    _check_value(value, "details")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_us(moment: datetime) -> int:
    assert moment.tzinfo is not None, "audit times must be timezone-aware"
    return (moment - _EPOCH) // _ONE_US


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at_us: int
    actor: str
    action: str
    subject: str
    details_json: str
    prev_hash: str
    hash: str

    @property
    def at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.at_us)


def entry_hash(
    seq: int, at_us: int, actor: str, action: str, subject: str, details_json: str, prev_hash: str
) -> str:
    sealed = {
        "seq": seq,
        "at_us": at_us,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details_json,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(sealed).encode("utf-8")).hexdigest()


def next_entry(
    last: AuditEntry | None,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    at: datetime,
) -> AuditEntry:
    """The entry that follows `last` (None: the first entry of the log)."""
    if action not in ACTIONS:
        raise UnknownAuditAction(f"unknown audit action {action!r}; known: {sorted(ACTIONS)}")
    details_json = canonical_json(dict(details))
    if len(details_json.encode("utf-8")) > MAX_DETAILS_BYTES:
        raise AuditDetailsInvalid(f"details are over {MAX_DETAILS_BYTES} bytes")
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS_HASH if last is None else last.hash
    at_us = to_us(at)
    digest = entry_hash(seq, at_us, actor, action, subject, details_json, prev)
    return AuditEntry(seq, at_us, actor, action, subject, details_json, prev, digest)


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.reason}"


def verify_chain(entries: Iterable[AuditEntry]) -> ChainBreak | None:
    """The first place where the chain does not hold, or None if every entry is intact.

    `entries` in the order they are stored (by sequence number).
    """
    expected_seq, prev = 1, GENESIS_HASH
    for e in entries:
        if e.seq != expected_seq:
            if e.seq > expected_seq:
                return ChainBreak(expected_seq, f"missing (the next stored entry is {e.seq})")
            return ChainBreak(e.seq, f"out of order or repeated after entry {expected_seq - 1}")
        computed = entry_hash(
            e.seq, e.at_us, e.actor, e.action, e.subject, e.details_json, e.prev_hash
        )
        if computed != e.hash:
            return ChainBreak(e.seq, "its content does not match its hash (edited)")
        if e.prev_hash != prev:
            return ChainBreak(e.seq, "does not follow the previous entry's hash (inserted)")
        expected_seq, prev = e.seq + 1, e.hash
    return None


@dataclass(frozen=True)
class Digest:
    """What a city publishes each day; anyone can later recompute it from the log."""

    day: date
    timezone: str
    first_seq: int | None
    last_seq: int | None
    count: int
    last_hash: str  # the chain's head at the end of the day (an earlier day's if none today)
    actions: dict[str, int]

    def as_json(self) -> str:
        return canonical_json(
            {
                "date": self.day.isoformat(),
                "timezone": self.timezone,
                "first_seq": self.first_seq,
                "last_seq": self.last_seq,
                "count": self.count,
                "last_hash": self.last_hash,
                "actions": dict(sorted(self.actions.items())),
            }
        )


def daily_digest(entries: Sequence[AuditEntry], day: date, tz: tzinfo) -> Digest:
    """The digest of `day` (in `tz`) over entries ordered by sequence number."""
    end_us = to_us(datetime.combine(day + timedelta(days=1), time(), tzinfo=tz))
    start_us = to_us(datetime.combine(day, time(), tzinfo=tz))
    todays = [e for e in entries if start_us <= e.at_us < end_us]
    head = [e for e in entries if e.at_us < end_us]
    return Digest(
        day=day,
        timezone=str(tz),
        first_seq=todays[0].seq if todays else None,
        last_seq=todays[-1].seq if todays else None,
        count=len(todays),
        last_hash=head[-1].hash if head else GENESIS_HASH,
        actions=dict(Counter(e.action for e in todays)),
    )


def compare_digest(published: Mapping[str, Any], recomputed: Digest) -> list[str]:
    """Each field where a published digest and the log disagree, in words."""
    now = json.loads(recomputed.as_json())
    return [
        f"{key}: published {published.get(key)!r}, the log gives {now[key]!r}"
        for key in now
        if published.get(key) != now[key]
    ]
