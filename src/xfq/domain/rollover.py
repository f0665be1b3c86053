"""Rollover: a finished round's unused value re-issued by a later round, pure.

How value becomes vouchers of the later round (the rule the operators read in `xfq spec check`):
- Per voucher type of the finished round, the value that rolls is (unclaimed + expired) ×
  its discount, counting only the sources the policy names. Unclaimed is the type's count
  (rollover into it included) minus what was issued; expired is vouchers that ended unused.
- It becomes extra vouchers of the later round's type with the same category, threshold and
  discount (the same count comes back), as Wuhan's weekly rounds re-issued their leftovers.
- Without such a type, the value goes to the later round's type of the same category with the
  smallest discount (value ÷ discount vouchers); what does not make a whole voucher is kept as a
  remainder, recorded and not issued. A category the later round lacks rolls nothing (all
  remainder).
A round rolls over once, after its claims have closed and its vouchers' validity has ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from xfq.domain.campaign import Campaign, RolloverSource, Round, VoucherType, start_of_day

NEXT_ROUND = "next"


@dataclass(frozen=True)
class Leftover:
    """What a voucher type of a finished round left unused."""

    type_id: str
    unclaimed: int
    expired: int


def leftover_of(vtype: VoucherType, rolled_in: int, issued: int, expired: int) -> Leftover:
    """`vtype`'s leftover once its round has finished: unclaimed is its count with what rolled
    into it, less the vouchers issued of it; `expired` those that ended unused."""
    return Leftover(vtype.id, vtype.count + rolled_in - issued, expired)


@dataclass(frozen=True)
class RolloverMove:
    from_round: str
    from_type_id: str
    into_round: str
    into_type_id: str | None
    unclaimed: int
    expired: int
    value_fen: int
    added_count: int
    remainder_fen: int

    def __post_init__(self) -> None:
        assert self.unclaimed >= 0 and self.expired >= 0, self
        assert self.remainder_fen >= 0 and self.added_count >= 0, self

    @property
    def key(self) -> str:
        """The move's identity in the ledger (ids hold no ':'): the idempotency key of giving
        its stock to a claim engine."""
        return f"{self.from_round}:{self.from_type_id}"

    @property
    def adds_stock(self) -> bool:
        return self.into_type_id is not None and self.added_count > 0


def target_round(campaign: Campaign, from_round_id: str) -> Round | None:
    """The later round the policy names for `from_round_id`'s leftovers, if any."""
    source = campaign.round(from_round_id)
    into = campaign.rollover.into
    if into != NEXT_ROUND:
        target = campaign.round(into)
        return target if target.number > source.number else None
    later = [r for r in campaign.rounds if r.number > source.number]
    return min(later, key=lambda r: r.number) if later else None


def target_type(into: Round, vtype: VoucherType) -> VoucherType | None:
    """The same voucher in the later round, else its category's smallest discount."""
    same_category = [t for t in into.types if t.category == vtype.category]
    for t in same_category:
        if (t.threshold_fen, t.discount_fen) == (vtype.threshold_fen, vtype.discount_fen):
            return t
    return min(same_category, key=lambda t: (t.discount_fen, t.id), default=None)


def rollover_due_at(campaign: Campaign, rnd: Round) -> datetime:
    """When `rnd` is finished: claims closed and every voucher's validity over."""
    last_day = rnd.validity.last_usable_day(rnd.opens_at, rnd.claim_closes_at, campaign.tz)
    return max(rnd.claim_closes_at, start_of_day(last_day + timedelta(days=1), campaign.tz))


def plan_rollover(
    campaign: Campaign, from_round_id: str, into: Round, leftovers: Mapping[str, Leftover]
) -> list[RolloverMove]:
    """The moves of one finished round into `into`, one per voucher type."""
    sources = campaign.rollover.sources
    moves = []
    for vtype in campaign.round(from_round_id).types:
        left = leftovers.get(vtype.id, Leftover(vtype.id, 0, 0))
        unclaimed = left.unclaimed if RolloverSource.UNCLAIMED in sources else 0
        expired = left.expired if RolloverSource.EXPIRED in sources else 0
        value_fen = (unclaimed + expired) * vtype.discount_fen
        target = target_type(into, vtype)
        added, remainder = divmod(value_fen, target.discount_fen) if target else (0, value_fen)
        moves.append(
            RolloverMove(
                from_round=from_round_id,
                from_type_id=vtype.id,
                into_round=into.id,
                into_type_id=target.id if target else None,
                unclaimed=unclaimed,
                expired=expired,
                value_fen=value_fen,
                added_count=added,
                remainder_fen=remainder,
            )
        )
    return moves


def rolled_in_counts(moves: Iterable[RolloverMove]) -> dict[str, int]:
    """Extra count of each voucher type that rollovers added."""
    extra: dict[str, int] = {}
    for m in moves:
        if m.into_type_id is not None and m.adds_stock:
            extra[m.into_type_id] = extra.get(m.into_type_id, 0) + m.added_count
    return extra


def effective_budget_fen(campaign: Campaign, round_id: str, extra: Mapping[str, int]) -> int:
    """The round's budget with what rolled into it, as vouchers, added."""
    rnd = campaign.round(round_id)
    return rnd.budget_fen + sum(extra.get(t.id, 0) * t.discount_fen for t in rnd.types)


def describe_policy(campaign: Campaign) -> list[str]:
    """What the policy would do, round by round, for `xfq spec check`."""
    policy = campaign.rollover
    if not policy.enabled:
        return ["rollover: disabled (unclaimed and expired value stays with its round)"]
    names = " and ".join(sorted(s.value for s in policy.sources))
    lines = [f"rollover: enabled; {names} value of a finished round rolls into a later round"]
    for rnd in sorted(campaign.rounds, key=lambda r: r.number):
        into = target_round(campaign, rnd.id)
        if into is None:
            lines.append(f"  round {rnd.id}: no later round to roll into")
            continue
        due = rollover_due_at(campaign, rnd).isoformat()
        lines.append(f"  round {rnd.id} -> round {into.id} (from {due}):")
        for vtype in rnd.types:
            target = target_type(into, vtype)
            how = (
                "nothing: no type of its category there"
                if target is None
                else f"{target.id}"
                + ("" if target.discount_fen == vtype.discount_fen else " (by value)")
            )
            lines.append(f"    {vtype.id} {vtype.label} -> {how}")
    return lines
