"""Checking the invariants of the design against a ledger, each with the figures behind it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from xfq.domain.campaign import Campaign, Round
from xfq.domain.money import format_yuan
from xfq.domain.quota import pools_of
from xfq.domain.rollover import effective_budget_fen
from xfq.services.reconcile_rollovers import RecordedMove, audit_rollovers


@dataclass(frozen=True)
class TypeFigures:
    type_id: str
    round_id: str
    count: int
    issued: int
    available: int
    redeemed: int
    expired: int
    posted_redemptions: int
    discount_fen: int
    order_value_fen: int
    reversed_redemptions: int


@dataclass(frozen=True)
class LedgerFigures:
    types: list[TypeFigures]
    over_type: list[tuple[str, str, int]] = field(default_factory=list)
    over_category: list[tuple[str, str, str, int]] = field(default_factory=list)
    over_round: list[tuple[str, str, int]] = field(default_factory=list)
    double_posted: int = 0
    not_enrolled: int = 0
    wrong_category: int = 0
    outside_validity: int = 0
    below_threshold: int = 0
    over_discount: int = 0
    state_mismatch: int = 0
    without_issue_event: int = 0
    voucher_ids: frozenset[str] = frozenset()
    unique_keys: frozenset[str] = frozenset()
    rolled_in: dict[str, int] = field(default_factory=dict)  # extra count per type, rollovers
    settlement_owed_fen: int | None = None  # over every day, closed and open; None: not read
    pool_issued: dict[str, int] = field(default_factory=dict)  # quota pool -> vouchers from it
    household_held: list[tuple[str, str, int]] = field(default_factory=list)  # head, round, n
    rollovers: list[RecordedMove] = field(default_factory=list)  # as recorded, every round


@dataclass(frozen=True)
class Check:
    number: int
    name: str
    ok: bool
    detail: str


def reconcile(
    campaign: Campaign, figures: LedgerFigures, answered_issued: Iterable[str] | None = None
) -> list[Check]:
    """Every invariant of design.md that a ledger can show; `answered_issued` are voucher ids
    that clients were told `issued` (invariant 3 needs them)."""
    return [
        _never_oversold(campaign, figures),
        _limits(campaign, figures),
        _durable(figures, answered_issued),
        _redeemed_once(figures),
        _retries(figures),
        _balanced(figures),
        _isolation(figures),
        _rollovers_match(campaign, figures),
    ]


def _never_oversold(campaign: Campaign, f: LedgerFigures) -> Check:
    """Counts and budgets with rollovers included: what rolled into a type adds to its count."""
    over = [t for t in f.types if t.issued > t.count + f.rolled_in.get(t.type_id, 0)]
    over_pools = _pools_over(campaign, f)
    paid = {r.id: 0 for r in campaign.rounds}
    for t in f.types:
        paid[t.round_id] = paid.get(t.round_id, 0) + t.discount_fen
    budget = {r.id: effective_budget_fen(campaign, r.id, f.rolled_in) for r in campaign.rounds}
    over_budget = [r for r in campaign.rounds if paid[r.id] > budget[r.id]]
    issued = sum(t.issued for t in f.types)
    count = sum(t.count for t in f.types) + sum(f.rolled_in.values())
    rolled = sum(f.rolled_in.values())
    detail = (
        f"{issued:,} issued of {count:,} ({rolled:,} rolled over); "
        f"types over their count: {len(over)}; "
    ) + "; ".join(_paid_of_budget(r, paid[r.id], budget[r.id]) for r in campaign.rounds)
    if f.pool_issued:
        detail += f"; quota pools over their count: {len(over_pools)}"
    return Check(1, "never oversell", not over and not over_budget and not over_pools, detail)


def _pools_over(campaign: Campaign, f: LedgerFigures) -> list[str]:
    """Quota pools (assisted reserve, district shares) that gave more than their count."""
    counts = {p: n for r in campaign.rounds for t in r.types for p, n in pools_of(t).items()}
    return [pool for pool, n in f.pool_issued.items() if n > counts.get(pool, 0)]


def _paid_of_budget(rnd: Round, paid_fen: int, budget_fen: int) -> str:
    text = f"round {rnd.id} paid {format_yuan(paid_fen)} of {format_yuan(budget_fen)} yuan"
    if budget_fen != rnd.budget_fen:
        text += f" (budget {format_yuan(rnd.budget_fen)} + rollover)"
    return text


def _limits(campaign: Campaign, f: LedgerFigures) -> Check:
    breaches = 0
    for _person, type_id, n in f.over_type:
        breaches += n > campaign.voucher_type(type_id)[1].per_person
    for _person, round_id, _category, n in f.over_category:
        limit = campaign.round(round_id).limits.per_category
        breaches += limit is not None and n > limit
    for _person, round_id, n in f.over_round:
        limit = campaign.round(round_id).limits.per_round
        breaches += limit is not None and n > limit
    for _head, round_id, n in f.household_held:
        cap = campaign.round(round_id).limits.per_household
        breaches += cap is not None and n > cap
    detail = (
        f"{breaches} person/type, person/category, person/round or household/round counts"
        " over the limit"
    )
    return Check(2, "per-person limits", breaches == 0, detail)


def _durable(f: LedgerFigures, answered: Iterable[str] | None) -> Check:
    if answered is None:
        detail = (
            f"every voucher has its issue event ({f.without_issue_event} without); "
            "pass the answers log to check each issued answer"
        )
        return Check(3, "issued answers are durable", f.without_issue_event == 0, detail)
    answered_ids = set(answered)
    missing = answered_ids - f.voucher_ids
    detail = f"{len(answered_ids):,} issued answers, {len(missing)} missing from the ledger"
    return Check(
        3, "issued answers are durable", not missing and f.without_issue_event == 0, detail
    )


def _redeemed_once(f: LedgerFigures) -> Check:
    problems = {
        "vouchers with two posted redemptions": f.double_posted,
        "at merchants not enrolled": f.not_enrolled,
        "at merchants of another category": f.wrong_category,
        "outside validity": f.outside_validity,
        "below threshold": f.below_threshold,
        "discount above the voucher's": f.over_discount,
    }
    detail = ", ".join(f"{n} {what}" for what, n in problems.items())
    return Check(
        4, "redeemed at most once, where and when allowed", not any(problems.values()), detail
    )


IDEMPOTENCY_KEYS = frozenset({"uq_vouchers_claim", "uq_redemptions_key", "uq_refunds_key"})


def _retries(f: LedgerFigures) -> Check:
    missing = IDEMPOTENCY_KEYS - f.unique_keys
    detail = (
        "the ledger keeps one row per (person, claim key), (merchant, redemption key) and "
        f"(merchant, refund key); unique constraints missing: {sorted(missing) or 'none'}"
    )
    return Check(5, "retries are safe", not missing, detail)


def _balanced(f: LedgerFigures) -> Check:
    unbalanced = [t for t in f.types if t.issued != t.available + t.redeemed + t.expired]
    posted = sum(t.posted_redemptions for t in f.types)
    redeemed = sum(t.redeemed for t in f.types)
    discount = sum(t.discount_fen for t in f.types)
    settled = f.settlement_owed_fen
    ok = (
        not unbalanced
        and posted == redeemed
        and f.state_mismatch == 0
        and (settled is None or settled == discount)
    )
    detail = (
        f"issued = available + redeemed + expired for {len(f.types) - len(unbalanced)}"
        f"/{len(f.types)} types; {posted:,} posted redemptions for {redeemed:,} redeemed "
        f"vouchers; discounts owed {format_yuan(discount)} yuan"
    )
    if settled is not None:
        detail += f"; settlement over every day {format_yuan(settled)} yuan"
    return Check(6, "the ledger balances", ok, detail)


def _isolation(f: LedgerFigures) -> Check:
    detail = (
        "every redemption's voucher belongs to the person who presented it and its merchant "
        f"is the one that redeemed: checked at each write; {f.wrong_category} cross-category"
    )
    return Check(7, "no one uses another's vouchers", f.wrong_category == 0, detail)


def _rollovers_match(campaign: Campaign, f: LedgerFigures) -> Check:
    """Each recorded rollover recomputed from the ledger now (services/reconcile_rollovers.py
    says which difference is legitimate): a rollover from a wrong picture issues money twice."""
    held = {t.type_id: (t.issued, t.redeemed) for t in f.types}
    audit = audit_rollovers(campaign, f.rollovers, held, f.rolled_in)
    if not f.rollovers:
        return Check(12, "rollovers match the ledger", True, "no rollover recorded")
    detail = (
        f"{audit.moves} move(s) of {audit.rounds} round(s) recomputed from the ledger: "
        f"{len(audit.mismatches)} mismatch(es)"
    )
    detail += "".join(f"; {text}" for text in audit.mismatches + audit.tolerated)
    return Check(12, "rollovers match the ledger", not audit.mismatches, detail)
