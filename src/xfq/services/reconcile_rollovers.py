"""Recorded rollovers recomputed from the ledger as it is now (a check of `xfq reconcile`).

A round rolls over once its claims have closed and every voucher's validity has ended, so the
picture a rollover read cannot change afterwards: the vouchers issued of each type are final
(unclaimed = count + rolled in - issued), and each is redeemed or ended unused (expired, or not
yet swept by expiry). Any difference is a rollover computed from a wrong picture - claims that
reached the ledger after it, a bug, a record edited - and moves money.

One change is legitimate: a refund after the validity reverses its redemption and lapses the
voucher (redeemed -> expired, domain/refund.py), its discount never paid. That voucher ended
unused after the rollover read the ledger; its value was not rolled and stays with its round.
So a recorded expired count may fall short of the ledger's by at most the vouchers of the type
lapsed at or after the rollover's time - exactly that, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from xfq.domain.campaign import Campaign, RolloverSource, VoucherType
from xfq.domain.errors import UnknownObject
from xfq.domain.money import format_yuan
from xfq.domain.rollover import (
    Leftover,
    RolloverMove,
    leftover_of,
    plan_rollover,
    target_round,
)


@dataclass(frozen=True)
class RecordedMove:
    """A move as the ledger holds it, and how many vouchers of its source type lapsed (a refund
    after their validity) at or after the rollover's time."""

    move: RolloverMove
    lapsed_since: int = 0


@dataclass(frozen=True)
class RolloverAudit:
    moves: int
    rounds: int
    mismatches: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)


def audit_rollovers(
    campaign: Campaign,
    recorded: Sequence[RecordedMove],
    held: Mapping[str, tuple[int, int]],
    rolled_in: Mapping[str, int],
) -> RolloverAudit:
    """Each recorded round's moves against the moves the ledger gives now. `held`: per voucher
    type, vouchers issued and of them redeemed; `rolled_in`: extra count per type (rollovers)."""
    by_round: dict[str, list[RecordedMove]] = {}
    for r in recorded:
        by_round.setdefault(r.move.from_round, []).append(r)
    mismatches: list[str] = []
    tolerated: list[str] = []
    for round_id in sorted(by_round):
        found = _audit_round(campaign, round_id, by_round[round_id], held, rolled_in)
        mismatches += found[0]
        tolerated += found[1]
    return RolloverAudit(len(recorded), len(by_round), mismatches, tolerated)


def _audit_round(
    campaign: Campaign,
    round_id: str,
    recorded: list[RecordedMove],
    held: Mapping[str, tuple[int, int]],
    rolled_in: Mapping[str, int],
) -> tuple[list[str], list[str]]:
    try:
        rnd = campaign.round(round_id)
    except UnknownObject:
        return [f"round {round_id} rolled over, but the campaign has no such round"], []
    into = target_round(campaign, round_id)
    if into is None:
        return [f"round {round_id} rolled over, but the campaign names no later round"], []
    by_type = {r.move.from_type_id: r for r in recorded}
    leftovers: dict[str, Leftover] = {}
    tolerated: list[str] = []
    for t in rnd.types:
        rec = by_type.get(t.id)
        leftovers[t.id], lapsed = _found(campaign, t, rec, held, rolled_in.get(t.id, 0))
        if lapsed:
            tolerated.append(
                f"{lapsed} voucher(s) of {t.id} lapsed by a refund after round {round_id} rolled "
                f"over: {format_yuan(lapsed * t.discount_fen)} yuan stays with round {round_id}"
            )
    due = {m.from_type_id: m for m in plan_rollover(campaign, round_id, into, leftovers)}
    mismatches = []
    for type_id in sorted(due.keys() | by_type.keys()):
        rec_move = by_type[type_id].move if type_id in by_type else None
        text = _mismatch(round_id, type_id, rec_move, due.get(type_id))
        if text is not None:
            mismatches.append(text)
    return mismatches, tolerated


def _found(
    campaign: Campaign,
    vtype: VoucherType,
    recorded: RecordedMove | None,
    held: Mapping[str, tuple[int, int]],
    rolled_in: int,
) -> tuple[Leftover, int]:
    """`vtype`'s leftover as the ledger shows it now, with the vouchers a refund lapsed after
    the rollover taken out (up to what the record lacks); and how many were taken out."""
    issued, redeemed = held.get(vtype.id, (0, 0))
    now = leftover_of(vtype, rolled_in, issued, issued - redeemed)
    lapsed = 0
    if RolloverSource.EXPIRED in campaign.rollover.sources and recorded is not None:
        lapsed = min(recorded.lapsed_since, max(0, now.expired - recorded.move.expired))
    # More issued than the count is oversold (check 1); here it leaves nothing unclaimed.
    return Leftover(vtype.id, max(0, now.unclaimed), now.expired - lapsed), lapsed


_FIELDS = (
    ("into_round", "into round", False),
    ("into_type_id", "into type", False),
    ("unclaimed", "unclaimed", False),
    ("expired", "expired", False),
    ("value_fen", "value", True),
    ("added_count", "added", False),
    ("remainder_fen", "remainder", True),
)


def _mismatch(
    round_id: str, type_id: str, recorded: RolloverMove | None, due: RolloverMove | None
) -> str | None:
    where = f"round {round_id} {type_id}"
    if recorded is None:
        assert due is not None
        return (
            f"{where}: no move recorded, the ledger gives unclaimed {due.unclaimed}, expired "
            f"{due.expired}: {format_yuan(due.value_fen)} yuan under-rolled"
        )
    if due is None:
        return (
            f"{where}: a move recorded for a type the round does not have: "
            f"{format_yuan(recorded.value_fen)} yuan over-rolled"
        )
    differences = []
    for name, label, is_fen in _FIELDS:
        was, now = getattr(recorded, name), getattr(due, name)
        if was != now:
            shown = (format_yuan(was), format_yuan(now)) if is_fen else (was, now)
            differences.append(f"{label} recorded {shown[0]}, found {shown[1]}")
    if not differences:
        return None
    return f"{where}: {'; '.join(differences)} -> {_verdict(recorded, due)}"


def _verdict(recorded: RolloverMove, due: RolloverMove) -> str:
    """What the difference did with money: value rolled, and of it value issued as vouchers
    (the rest is remainder, kept)."""
    rolled_fen = recorded.value_fen - due.value_fen
    issued_fen = (recorded.value_fen - recorded.remainder_fen) - (due.value_fen - due.remainder_fen)
    if rolled_fen == 0:
        text = "same value rolled"
    else:
        way = "over" if rolled_fen > 0 else "under"
        text = f"{format_yuan(abs(rolled_fen))} yuan {way}-rolled"
    if issued_fen != 0:
        way = "over" if issued_fen > 0 else "under"
        text += f", {format_yuan(abs(issued_fen))} yuan {way}-issued as vouchers"
    return text
