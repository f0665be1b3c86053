"""Rolling a finished round's unused value into a later round, once (see domain/rollover.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from xfq.domain.campaign import Campaign
from xfq.domain.errors import XfqError
from xfq.domain.rollover import (
    Leftover,
    RolloverMove,
    effective_budget_fen,
    leftover_of,
    plan_rollover,
    rolled_in_counts,
    rollover_due_at,
    target_round,
)
from xfq.ports import Ledger, LedgerTx, RolloverStore


class RolloverRefused(XfqError):
    """The policy, the calendar or the later round does not allow this rollover now."""

    code = "rollover_refused"


class ClaimsNotPersisted(RolloverRefused):
    """The claim engine issued vouchers of the round that the ledger does not hold yet: counted
    now, they would roll over as unclaimed. The rollover waits for the persister."""

    code = "rollover_claims_unpersisted"

    def __init__(self, round_id: str, unpersisted: int) -> None:
        self.round_id = round_id
        self.unpersisted = unpersisted
        super().__init__(
            f"round {round_id}'s rollover waits: {unpersisted:,} of its claims decided in the "
            "claim engine are not in the ledger yet (is the persister running?); it is computed "
            "once the persister has moved them"
        )


# Of each voucher type the ledger counts (type id -> vouchers in the ledger), how many more the
# claim engine has issued; given the ledger's rollover moves (they add to the engine's stock).
Unpersisted = Callable[[Mapping[str, int], Sequence[RolloverMove]], Mapping[str, int]]


@dataclass(frozen=True)
class RolloverResult:
    from_round: str
    into_round: str
    moves: tuple[RolloverMove, ...]
    newly_done: bool  # False: it was done before; these are the recorded moves

    @property
    def value_fen(self) -> int:
        return sum(m.value_fen for m in self.moves)

    @property
    def added_fen(self) -> int:
        return self.value_fen - self.remainder_fen

    @property
    def remainder_fen(self) -> int:
        return sum(m.remainder_fen for m in self.moves)


def roll_over(
    store: RolloverStore,
    ledger: Ledger,
    campaign: Campaign,
    round_id: str,
    now: datetime,
    unpersisted: Unpersisted | None = None,
) -> RolloverResult:
    """Move `round_id`'s unclaimed and expired value into the later round; idempotent.

    `unpersisted` asks a claim engine that answers claims before the ledger holds them (Redis)
    what it issued beyond the ledger; the rollover is refused (`ClaimsNotPersisted`) until that
    is nothing for every type of the round."""
    if not campaign.rollover.enabled:
        raise RolloverRefused(f"campaign {campaign.id}'s rollover policy is disabled")
    into = target_round(campaign, round_id)
    if into is None:
        raise RolloverRefused(f"round {round_id} has no later round to roll into")
    done = store.moves(round_id)
    if done:
        return RolloverResult(round_id, into.id, tuple(done), newly_done=False)
    due = rollover_due_at(campaign, campaign.round(round_id))
    if now < due:
        raise RolloverRefused(
            f"round {round_id} is not finished: its vouchers are usable until {due.isoformat()}"
        )
    if now >= into.claim_closes_at:
        raise RolloverRefused(
            f"round {into.id} stopped taking claims at {into.claim_closes_at.isoformat()}; "
            "vouchers rolled into it could never be claimed"
        )
    leftovers = _leftovers(store, ledger, campaign, round_id, now, unpersisted)
    moves = plan_rollover(campaign, round_id, into, leftovers)
    if not store.record(moves, now):
        return RolloverResult(round_id, into.id, tuple(store.moves(round_id)), newly_done=False)
    # The store appended the "rollover" audit entry in the same transaction as the moves.
    ordered = tuple(sorted(moves, key=lambda m: m.from_type_id))  # as the store lists them
    return RolloverResult(round_id, into.id, ordered, newly_done=True)


def _leftovers(
    store: RolloverStore,
    ledger: Ledger,
    campaign: Campaign,
    round_id: str,
    now: datetime,
    unpersisted: Unpersisted | None,
) -> dict[str, Leftover]:
    def expire_due(tx: LedgerTx) -> int:
        return tx.expire_due(now)

    ledger.write(expire_due).result()  # what is still unused at the end must count as expired
    moves = store.moves()
    extra = rolled_in_counts(moves)
    counts = store.issued_and_expired(round_id)
    if unpersisted is not None:
        _refuse_unpersisted(campaign, round_id, counts, moves, unpersisted)
    leftovers = {}
    for t in campaign.round(round_id).types:
        issued, expired = counts.get(t.id, (0, 0))
        leftovers[t.id] = leftover_of(t, extra.get(t.id, 0), issued, expired)
    return leftovers


def _refuse_unpersisted(
    campaign: Campaign,
    round_id: str,
    counts: Mapping[str, tuple[int, int]],
    moves: Sequence[RolloverMove],
    unpersisted: Unpersisted,
) -> None:
    """Unclaimed is count - issued *in the ledger*: a claim the engine issued and the persister
    has not moved yet (it died days ago, PostgreSQL was cut) would count as unclaimed and its
    value be issued twice. The round's claims are closed, so the engine's count is final and the
    ledger's only grows: once the ledger holds them all, `counts` (read before the engine was
    asked) is exact."""
    in_ledger = {t.id: counts.get(t.id, (0, 0))[0] for t in campaign.round(round_id).types}
    behind = sum(max(0, n) for n in unpersisted(in_ledger, moves).values())
    if behind:
        raise ClaimsNotPersisted(round_id, behind)


def due_rollovers(campaign: Campaign, store: RolloverStore, now: datetime) -> list[str]:
    """Rounds whose rollover may run now and has not run yet."""
    if not campaign.rollover.enabled:
        return []
    done = {m.from_round for m in store.moves()}
    due = []
    for rnd in campaign.rounds:
        into = target_round(campaign, rnd.id)
        if (
            into is not None
            and rnd.id not in done
            and rollover_due_at(campaign, rnd) <= now < into.claim_closes_at
        ):
            due.append(rnd.id)
    return due


def effective_budgets(campaign: Campaign, store: RolloverStore) -> dict[str, int]:
    """Each round's budget with rollovers into it added, in fen."""
    extra = rolled_in_counts(store.moves())
    return {r.id: effective_budget_fen(campaign, r.id, extra) for r in campaign.rounds}
