"""Loading a campaign into Redis from the ledger: stock, limits, windows; safe to repeat.

The first load of a shard writes its part of the stock and, when the ledger already holds
vouchers (Redis was replaced by an empty one), the counts and idempotency answers of the people
whose home it is, from the ledger. Its voucher types are written last, together with the
`loaded` mark: until then the claim script answers `U` and nothing is decided on a half-loaded
shard. Every load then sets the voucher counts Redis's stock is made for to the campaign's, all
or nothing (`scripts.SET_COUNTS`: a raised count or a new type adds its stock once, a lowered
count takes back unclaimed stock; a removed type, or a count lowered below what was claimed, is
refused with nothing changed), rewrites rounds (claim windows and limits) and types (limits),
and adds the stock of any rollover recorded in the ledger that Redis has not received (see
`rollovers`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from xfq.adapters.redis import connect, rollovers
from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import COUNTS_SHARD, Layout, shards_key
from xfq.adapters.redis.scripts import SET_COUNTS_SCRIPT
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.adapters.sql.times import to_us
from xfq.domain.campaign import Campaign
from xfq.domain.errors import CampaignChangeRefused
from xfq.domain.rollover import RolloverMove, rolled_in_counts


@dataclass
class _Held:
    """What the ledger already holds for the people of one shard."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    answers: dict[tuple[str, str], str] = field(default_factory=dict)


def load_campaign(
    redis: SyncRedis, campaign: Campaign, ledger: SqlLedger, shards: int, digest: str = ""
) -> Layout:
    """Make Redis ready to decide `campaign` (whose spec has the sha256 `digest`; '' leaves
    Redis's as it is); the shard count of a first load is kept. Raises `CampaignChangeRefused`
    having changed nothing when Redis cannot run `campaign`'s counts and types."""
    redis.set(shards_key(campaign.id), shards, nx=True)
    layout = Layout(campaign.id, int(str(redis.get(shards_key(campaign.id)))))
    unloaded = [s for s in range(layout.shards) if not redis.exists(layout.loaded(s))]
    moves = SqlRolloverStore(ledger.engine).moves()  # read once: the stock and its marks agree
    if unloaded:
        held, issued = _from_ledger(layout, campaign, ledger)
        for shard in unloaded:
            _fill(redis, layout, campaign, shard, held[shard], issued, moves)
    seed = {} if redis.exists(layout.counts()) else ledger.type_counts()
    set_counts(redis, layout, campaign, digest, seed)
    write_rounds(redis, layout, campaign)
    _write_types(redis, layout, campaign)
    for shard in unloaded:
        redis.set(layout.loaded(shard), 1)
    rollovers.top_up(redis, layout, moves)  # recorded while Redis was away or before this load
    return layout


def set_counts(
    redis: SyncRedis, layout: Layout, campaign: Campaign, digest: str, seed: dict[str, int]
) -> None:
    """Make Redis's stock that of `campaign`'s counts, all at once, or refuse having changed
    nothing (see `scripts.SET_COUNTS`); `seed`: the counts Redis was loaded with, for a Redis
    loaded before they were kept in it."""
    request = {
        "types": [[t.id, t.count, r.id, t.category] for r in campaign.rounds for t in r.types],
        "seed": [[type_id, count] for type_id, count in seed.items()],
        "digest": digest,
    }
    shard, args = COUNTS_SHARD, orjson.dumps(request).decode()
    refused = connect.run(redis, SET_COUNTS_SCRIPT, layout.stream(shard), layout.tag(shard), args)
    if refused:
        raise CampaignChangeRefused(_refusal(layout, [str(r) for r in refused]))


def _refusal(layout: Layout, refused: list[str]) -> str:
    reasons = []
    for line in refused:
        code, type_id, *rest = line.split("|")
        if code == "R":
            reasons.append(f"voucher type {type_id} cannot be removed (or renamed)")
        elif code == "M":
            reasons.append(f"voucher type {type_id} cannot move from round {rest[0]}/{rest[1]}")
        elif code == "L":
            count, wanted, left = rest
            place = "" if layout.shards == 1 else f" in shard {COUNTS_SHARD}'s part of the stock"
            reasons.append(
                f"the count of {type_id} cannot be lowered from {count} to {wanted}: "
                f"only {left} unclaimed voucher(s){place} can be taken back now"
            )
        else:
            reasons.append(f"Redis holds voucher type {type_id} with no known count")
    return (
        "Redis runs this campaign's grab and cannot take this upload, so nothing was changed: "
        + "; ".join(reasons)
    )


def _from_ledger(
    layout: Layout, campaign: Campaign, ledger: SqlLedger
) -> tuple[dict[int, _Held], Counter[str]]:
    held: dict[int, _Held] = defaultdict(_Held)
    issued: Counter[str] = Counter()
    reader = ledger.reader()
    for voucher_id, type_id, person_id, claim_key, _state in ledger.issued_claims():
        rnd, vtype = campaign.voucher_type(type_id)
        shard = held[layout.home(person_id)]
        counts = shard.counts[person_id]
        counts[f"t:{type_id}"] += 1
        counts[f"c:{rnd.id}:{vtype.category}"] += 1
        counts[f"r:{rnd.id}"] += 1
        issued[type_id] += 1
        v = reader.voucher(voucher_id)
        assert v is not None
        shard.answers[(person_id, claim_key)] = (
            f"{type_id}|{v.id}|{to_us(v.issued_at)}|{to_us(v.valid_from)}|{to_us(v.valid_until)}|0"
        )
    return held, issued


def _fill(
    redis: SyncRedis,
    layout: Layout,
    campaign: Campaign,
    shard: int,
    held: _Held,
    issued: Counter[str],
    moves: list[RolloverMove],
) -> None:
    """Absolute values only, so that a load cut short and run again writes the same."""
    pipe = redis.pipeline(transaction=False)
    issued_here: Counter[str] = Counter()
    for person_id, counts in held.counts.items():
        fields: dict[Any, Any] = dict(counts)
        pipe.hset(layout.person(shard, person_id), mapping=fields)
        for name, n in counts.items():
            if name.startswith("t:"):
                issued_here[name[2:]] += n
    for (person_id, key), answer in held.answers.items():
        pipe.hset(layout.person(shard, person_id), f"k:{key}", answer)
    pipe.execute()
    # The stock with the rollovers it counts, in one MULTI (its keys share the shard's slot).
    stock = redis.pipeline(transaction=True)
    rolled = rolled_in_counts(moves)
    for rnd in campaign.rounds:
        for vtype in rnd.types:
            left = vtype.count + rolled.get(vtype.id, 0) - issued[vtype.id]
            stock.set(layout.stock(shard, vtype.id), layout.split(left, shard))
            stock.hset(layout.rebuilt(shard), vtype.id, issued_here[vtype.id])
    if shard == rollovers.SHARD:
        rollovers.write_received(stock, layout, moves)
    if shard == COUNTS_SHARD:  # the counts this stock is made for (`set_counts`)
        stock.delete(layout.counts())
        made_for: dict[Any, Any] = {t.id: t.count for r in campaign.rounds for t in r.types}
        stock.hset(layout.counts(), mapping=made_for)
    stock.execute()


def write_rounds(redis: SyncRedis, layout: Layout, campaign: Campaign) -> None:
    """Claim windows and limits of every round, in every shard (-1: no limit)."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(layout.shards):
        for rnd in campaign.rounds:
            per_category, per_round = rnd.limits.per_category, rnd.limits.per_round
            fields: dict[Any, Any] = {
                "opens": to_us(rnd.opens_at),
                "closes": to_us(rnd.claim_closes_at),
                "per_category": -1 if per_category is None else per_category,
                "per_round": -1 if per_round is None else per_round,
            }
            pipe.hset(layout.round(shard, rnd.id), mapping=fields)
    pipe.execute()


def _write_types(redis: SyncRedis, layout: Layout, campaign: Campaign) -> None:
    """Every type in every shard (absolute values), once its stock is there: until then the
    claim script answers `U` for it."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(layout.shards):
        for rnd in campaign.rounds:
            for vtype in rnd.types:
                fields: dict[Any, Any] = {
                    "round": rnd.id,
                    "category": vtype.category,
                    "per_person": vtype.per_person,
                }
                pipe.hset(layout.voucher_type(shard, vtype.id), mapping=fields)
    pipe.execute()
