"""A lottery round's life: commit to a seed, register citizens, freeze the list, draw, issue.

The draw itself is pure (`domain/lottery.py`); this module decides when each step is allowed
and moves the winners into the ledger through the ledger port.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from xfq.domain.campaign import Campaign, LotteryRules, Round
from xfq.domain.eligibility import Citizen
from xfq.domain.errors import UnknownObject, XfqError
from xfq.domain.lottery import (
    SEED_BYTES,
    DrawInput,
    DrawRecord,
    Registration,
    make_record,
    parse_record,
    registration_list,
    seed_commitment,
    sha256_hex,
    valid_person_id,
)
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import IdSource, Ledger, LedgerTx, LotteryState, LotteryStore


class LotteryRefused(XfqError):
    """This lottery step is not possible now (too early, too late, not committed, ...)."""

    code = "lottery_refused"


class NotEligible(XfqError):
    code = "not_eligible"


class DrawnVouchers(Protocol):
    """What a draw needs of the claim engine: stock left, and counting what it issued."""

    def remaining(self, type_id: str) -> int: ...

    def note_issued(self, vouchers: list[tuple[Voucher, str]]) -> None: ...


@dataclass(frozen=True)
class DrawOutcome:
    record: DrawRecord
    issued_now: int  # vouchers written by this call (0 when the draw had been done)


def lottery_round(campaign: Campaign, round_id: str) -> tuple[Round, LotteryRules]:
    rnd = campaign.round(round_id)
    if rnd.lottery is None:
        raise UnknownObject(f"round {round_id} is a {rnd.issuance} round, not a lottery")
    return rnd, rnd.lottery


def claim_key(round_id: str, type_id: str) -> str:
    """The claim key of a lottery win: one voucher per person and type.

    Not ASCII on purpose: the claim endpoint takes ASCII keys only, so no client can take this
    key first and make the winner's voucher collide with their own claim.
    """
    return f"摇号:{round_id}:{type_id}"


def commit_seed(
    store: LotteryStore, campaign: Campaign, round_id: str, operator: str, now: datetime
) -> LotteryState:
    """Choose the round's secret seed and record its SHA-256 for publication; idempotent."""
    _, rules = lottery_round(campaign, round_id)
    known = store.state(round_id)
    if known is not None:
        return known
    if now >= rules.registration_closes_at:
        raise LotteryRefused(
            f"registration for round {round_id} closed at"
            f" {rules.registration_closes_at.isoformat()}: a seed chosen now would not be a"
            " commitment"
        )
    seed_hex = secrets.token_hex(SEED_BYTES)
    store.commit_seed(round_id, seed_hex, seed_commitment(seed_hex), operator, now)
    state = store.state(round_id)
    assert state is not None
    return state


def register(
    store: LotteryStore,
    campaign: Campaign,
    citizen: Citizen,
    round_id: str,
    type_id: str,
    now: datetime,
) -> bool:
    """Register `citizen` for a draw of `type_id`; False if they had registered already."""
    rnd, rules = lottery_round(campaign, round_id)
    if type_id not in {t.id for t in rnd.types}:
        raise UnknownObject(f"round {round_id} has no voucher type {type_id!r}")
    if not rules.registration_open(now):
        raise LotteryRefused(
            f"registration for round {round_id} is open from"
            f" {rules.registration_opens_at.isoformat()} until"
            f" {rules.registration_closes_at.isoformat()}"
        )
    refusal = rnd.eligibility.refusal(citizen)
    if refusal is not None:
        raise NotEligible(refusal)
    if not valid_person_id(citizen.person_id):
        raise NotEligible("this person's id cannot be written in the published list")
    return store.register(round_id, citizen.person_id, type_id, now)


def register_category(
    store: LotteryStore,
    campaign: Campaign,
    citizen: Citizen,
    round_id: str,
    category: str,
    now: datetime,
) -> list[str]:
    """Register for the draw of every type of `category` in the round (the round's limits,
    e.g. one voucher per category, then decide how many can be won); the types newly entered."""
    rnd, _ = lottery_round(campaign, round_id)
    types = [t.id for t in rnd.types if t.category == category]
    if not types:
        raise UnknownObject(f"round {round_id} has no voucher type of category {category!r}")
    return [t for t in types if register(store, campaign, citizen, round_id, t, now)]


def freeze(store: LotteryStore, campaign: Campaign, round_id: str, now: datetime) -> LotteryState:
    """Close the list once registration has closed and record its hash; idempotent."""
    _, rules = lottery_round(campaign, round_id)
    state = store.state(round_id)
    if state is None:
        raise LotteryRefused(
            f"round {round_id} has no seed commitment: an operator must commit one before"
            " registration closes, or the draw cannot be verified"
        )
    if state.frozen_at is not None:
        return state
    if now < rules.registration_closes_at:
        raise LotteryRefused(
            f"registration for round {round_id} is open until"
            f" {rules.registration_closes_at.isoformat()}"
        )
    listed = registration_list(store.registrations(round_id))
    store.freeze(round_id, sha256_hex(listed), now)
    frozen = store.state(round_id)
    assert frozen is not None and frozen.frozen_at is not None
    return frozen


def run_draw(
    store: LotteryStore,
    ledger: Ledger,
    engine: DrawnVouchers,
    ids: IdSource,
    campaign: Campaign,
    round_id: str,
    now: datetime,
    households: Mapping[str, str] | None = None,
) -> DrawOutcome:
    """Draw (once) and issue the winners' vouchers; a re-run issues only what is missing.

    `households` (member -> head) apply the round's `per_household` cap to the draw.
    """
    rnd, rules = lottery_round(campaign, round_id)
    if now < rules.draw_at:
        raise LotteryRefused(f"the draw of round {round_id} is at {rules.draw_at.isoformat()}")
    state = freeze(store, campaign, round_id, now)
    if state.draw_json is None:
        registrations = store.registrations(round_id)
        given = _draw_input(store, engine, campaign, rnd, rules, registrations, households or {})
        record = make_record(state.seed_hex, registrations, given)
        assert record.registrations_sha256 == state.registrations_sha256, "list changed"
        store.record_draw(round_id, record.to_json(), now)
        state = store.state(round_id) or state
    assert state.draw_json is not None
    record = parse_record(state.draw_json)  # the stored draw is the truth, also on a re-run
    return DrawOutcome(record, _issue(store, ledger, engine, ids, campaign, rnd, record, now))


def _draw_input(
    store: LotteryStore,
    engine: DrawnVouchers,
    campaign: Campaign,
    rnd: Round,
    rules: LotteryRules,
    registrations: list[Registration],
    households: Mapping[str, str],
) -> DrawInput:
    people = {r.person_id for r in registrations}
    week, whole = _prior_wins(store, campaign, rnd, people)
    capped = rnd.limits.per_household is not None
    return DrawInput(
        campaign_id=campaign.id,
        round_id=rnd.id,
        stock={t.id: engine.remaining(t.id) for t in rnd.types},
        categories={t.id: t.category for t in rnd.types},
        per_category=rnd.limits.per_category,
        per_round=rnd.limits.per_round,
        max_wins_per_week=rules.max_wins_per_week,
        max_wins_per_campaign=rules.max_wins_per_campaign,
        prior_week=week,
        prior_campaign=whole,
        per_household=rnd.limits.per_household,
        households={p: households[p] for p in sorted(people) if capped and p in households},
    )


def _prior_wins(
    store: LotteryStore, campaign: Campaign, rnd: Round, people: set[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Wins of `people` in the campaign's other drawn lottery rounds: same ISO week, all."""
    assert rnd.lottery is not None
    this_week = rnd.lottery.draw_at.astimezone(campaign.tz).isocalendar()[:2]
    week: dict[str, int] = {}
    whole: dict[str, int] = {}
    for other_id, text in store.draws().items():
        other = campaign.round(other_id)
        if other_id == rnd.id or other.lottery is None:
            continue
        same_week = other.lottery.draw_at.astimezone(campaign.tz).isocalendar()[:2] == this_week
        for winner in parse_record(text).winners:
            if winner.person_id in people:
                whole[winner.person_id] = whole.get(winner.person_id, 0) + 1
                if same_week:
                    week[winner.person_id] = week.get(winner.person_id, 0) + 1
    return week, whole


def _issue(
    store: LotteryStore,
    ledger: Ledger,
    engine: DrawnVouchers,
    ids: IdSource,
    campaign: Campaign,
    rnd: Round,
    record: DrawRecord,
    now: datetime,
) -> int:
    have = store.claim_keys(rnd.id)
    valid_from, valid_until = rnd.validity.window(rnd.opens_at, now, campaign.tz)
    types = {t.id: t for t in rnd.types}
    missing = [
        (
            Voucher(
                id=ids.new_id("v"),
                type_id=w.type_id,
                round_id=rnd.id,
                category=types[w.type_id].category,
                person_id=w.person_id,
                state=VoucherState.ISSUED,
                issued_at=now,
                valid_from=valid_from,
                valid_until=valid_until,
            ),
            claim_key(rnd.id, w.type_id),
        )
        for w in record.winners
        if (w.person_id, claim_key(rnd.id, w.type_id)) not in have
    ]

    def write(tx: LedgerTx) -> int:
        for voucher, key in missing:
            tx.insert_voucher(voucher, key)
        return len(missing)

    if missing:
        ledger.write(write).result()
        engine.note_issued(missing)
    return len(missing)


def published_state(store: LotteryStore, campaign: Campaign, round_id: str) -> LotteryState | None:
    lottery_round(campaign, round_id)
    return store.state(round_id)
