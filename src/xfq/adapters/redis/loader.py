"""Loading a campaign into Redis from the ledger: stock, limits, windows; safe to repeat.

The first load of a shard writes its part of the stock and, when the ledger already holds
vouchers (Redis was replaced by an empty one), the counts and idempotency answers of the people
whose home it is, from the ledger. Its voucher types are written last, together with the
`loaded` mark: until then the claim script answers `U` and nothing is decided on a half-loaded
shard. Later loads only rewrite rounds (claim windows and limits), and add the stock of any
rollover recorded in the ledger that Redis has not received (see `rollovers`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from xfq.adapters.redis import rollovers
from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import Layout, shards_key
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.adapters.sql.times import to_us
from xfq.domain.campaign import Campaign
from xfq.domain.rollover import RolloverMove, rolled_in_counts


@dataclass
class _Held:
    """What the ledger already holds for the people of one shard."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    answers: dict[tuple[str, str], str] = field(default_factory=dict)


def load_campaign(redis: SyncRedis, campaign: Campaign, ledger: SqlLedger, shards: int) -> Layout:
    """Make Redis ready to decide `campaign`; the shard count of a first load is kept."""
    redis.set(shards_key(campaign.id), shards, nx=True)
    layout = Layout(campaign.id, int(str(redis.get(shards_key(campaign.id)))))
    unloaded = [s for s in range(layout.shards) if not redis.exists(layout.loaded(s))]
    moves = SqlRolloverStore(ledger.engine).moves()  # read once: the stock and its marks agree
    if unloaded:
        held, issued = _from_ledger(layout, campaign, ledger)
        for shard in unloaded:
            _fill(redis, layout, campaign, shard, held[shard], issued, moves)
    write_rounds(redis, layout, campaign)
    for shard in unloaded:
        _mark_loaded(redis, layout, campaign, shard)
    rollovers.top_up(redis, layout, moves)  # recorded while Redis was away or before this load
    return layout


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


def _mark_loaded(redis: SyncRedis, layout: Layout, campaign: Campaign, shard: int) -> None:
    pipe = redis.pipeline(transaction=False)
    for rnd in campaign.rounds:
        for vtype in rnd.types:
            fields: dict[Any, Any] = {
                "round": rnd.id,
                "category": vtype.category,
                "per_person": vtype.per_person,
            }
            pipe.hset(layout.voucher_type(shard, vtype.id), mapping=fields)
    pipe.set(layout.loaded(shard), 1)
    pipe.execute()
