"""Redis against the ledger: stock left + claims issued = count, the ledger holds every claim
Redis issued, each person's counts agree, and Redis has the stock of every rollover the ledger
recorded; `repair_gaps` moves what the persister has not and adds that stock (once).

Redis's issued claims are its streams (plus what a load took over from the ledger), read whole:
this is an operator's check after a round, not a hot path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from xfq.adapters.redis import rollovers
from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import Layout
from xfq.adapters.redis.persister import complete_move, entries, insert_missing, voucher_of
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.domain.campaign import Campaign
from xfq.domain.rollover import RolloverMove, rolled_in_counts
from xfq.domain.voucher import Voucher
from xfq.services.reconcile import Check

COMMIT_TIMEOUT_S = 120.0
COUNTS_PER_CALL = 10_000  # person counts asked for in one pipelined round trip


@dataclass
class RedisState:
    left: Counter[str] = field(default_factory=Counter)
    issued: Counter[str] = field(default_factory=Counter)  # streamed + taken over at load
    in_transit: Counter[str] = field(default_factory=Counter)  # lent, not yet received
    streamed: dict[str, tuple[Voucher, str]] = field(default_factory=dict)
    open_moves: list[dict[str, str]] = field(default_factory=list)


def read_redis(redis: SyncRedis, layout: Layout, campaign: Campaign) -> RedisState:
    state = RedisState()
    types = [t.id for r in campaign.rounds for t in r.types]
    for shard in range(layout.shards):
        for type_id in types:
            state.left[type_id] += int(str(redis.get(layout.stock(shard, type_id)) or 0))
        rebuilt: dict[Any, Any] = redis.hgetall(layout.rebuilt(shard))
        for type_id, n in rebuilt.items():
            state.issued[type_id] += int(n)
        _read_stream(redis, layout, campaign, shard, state)
    return state


def _read_stream(
    redis: SyncRedis, layout: Layout, campaign: Campaign, shard: int, state: RedisState
) -> None:
    for _id, fields in entries(redis, layout.stream(shard)):
        if "v" in fields:
            state.streamed[fields["v"]] = voucher_of(campaign, fields)
            state.issued[fields["t"]] += 1
        elif "m" in fields:
            to = int(fields["to"])
            if not redis.sismember(f"{layout.tag(to)}:moves", fields["m"]):
                state.in_transit[fields["t"]] += int(fields["n"])
                state.open_moves.append(fields)


def _person_counts(
    redis: SyncRedis, layout: Layout, keys: set[tuple[str, str]]
) -> Counter[tuple[str, str]]:
    """Redis's count of each (person, type), asked in pipelined chunks: one round trip per
    person took minutes after a city's grab."""
    counts: Counter[tuple[str, str]] = Counter()
    ordered = list(keys)
    for at in range(0, len(ordered), COUNTS_PER_CALL):
        chunk = ordered[at : at + COUNTS_PER_CALL]
        pipe = redis.pipeline(transaction=False)
        for person, type_id in chunk:
            pipe.hget(layout.person(layout.home(person), person), f"t:{type_id}")
        for key, n in zip(chunk, pipe.execute(), strict=True):
            counts[key] = int(str(n or 0))
    return counts


def check_redis(
    redis: SyncRedis, layout: Layout, campaign: Campaign, ledger: SqlLedger
) -> list[Check]:
    state = read_redis(redis, layout, campaign)
    held: Counter[str] = Counter()
    person_held: Counter[tuple[str, str]] = Counter()
    ledger_ids = set()
    for voucher_id, type_id, person_id, _key, _state in ledger.issued_claims():
        held[type_id] += 1
        person_held[(person_id, type_id)] += 1
        ledger_ids.add(voucher_id)
    streamed_keys = {(v.person_id, v.type_id) for v, _k in state.streamed.values()}
    in_redis = _person_counts(redis, layout, streamed_keys | set(person_held))
    types = [t for r in campaign.rounds for t in r.types]
    on_hand = state.left + state.issued + state.in_transit
    moves = SqlRolloverStore(ledger.engine).moves()  # stock rollovers added to later rounds
    rolled = rolled_in_counts(moves)
    late = rollovers.missing(redis, layout, moves)
    unbalanced = [t.id for t in types if on_hand[t.id] != t.count + rolled.get(t.id, 0)]
    missing = set(state.streamed) - ledger_ids
    beyond = [t.id for t in types if held[t.id] > state.issued[t.id]]
    disagree = [k for k in in_redis if in_redis[k] != person_held[k]]
    left, issued = sum(state.left.values()), sum(state.issued.values())
    moving = sum(state.in_transit.values())
    return [
        Check(
            8,
            "Redis stock balances",
            not unbalanced,
            f"{left:,} left + {issued:,} issued + {moving} moving between shards = count "
            f"(+ rolled over) for "
            f"{len(types) - len(unbalanced)}/{len(types)} types"
            + (f"; off: {', '.join(unbalanced)}" if unbalanced else "")
            + (f"; {sum(m.added_count for m in late):,} rolled over not in Redis" if late else ""),
        ),
        Check(
            9,
            "every claim Redis issued is in the ledger",
            not missing and not beyond,
            f"{issued:,} issued in Redis, {len(missing)} not yet in the ledger "
            f"(--repair moves them); types with more in the ledger than Redis issued: "
            f"{', '.join(beyond) or 'none'}",
        ),
        Check(
            10,
            "per-person counts agree",
            not disagree,
            f"{len(in_redis):,} person/type counts, {len(disagree)} differ between Redis and "
            "the ledger",
        ),
        _rolled_over_stock(moves, late),
    ]


def _rolled_over_stock(moves: list[RolloverMove], late: list[RolloverMove]) -> Check:
    adding = [m for m in moves if m.adds_stock]
    detail = f"{len(adding) - len(late)}/{len(adding)} rollover moves' stock received by Redis"
    if late:
        detail += "; not received (--repair adds it): " + "; ".join(
            f"{m.added_count:,} voucher(s) of {m.into_type_id} (round {m.into_round}) "
            f"rolled over from {m.from_type_id} (round {m.from_round})"
            for m in late
        )
    return Check(11, "rolled-over stock is in Redis", not late, detail)


@dataclass(frozen=True)
class Repaired:
    moved: int  # vouchers Redis issued that the ledger lacked
    topped_up: list[RolloverMove]  # rollover moves whose stock Redis lacked


def repair_gaps(
    redis: SyncRedis, layout: Layout, campaign: Campaign, ledger: SqlLedger
) -> Repaired:
    """Insert what Redis issued and the ledger lacks; finish moves between shards; add the stock
    of rollovers Redis has not received (each once, see `rollovers`)."""
    state = read_redis(redis, layout, campaign)
    for fields in state.open_moves:
        complete_move(redis, layout, fields)
    topped_up = rollovers.top_up(redis, layout, SqlRolloverStore(ledger.engine).moves())
    claims = list(state.streamed.values())
    moved = ledger.write(insert_missing(claims)).result(COMMIT_TIMEOUT_S)
    return Repaired(moved, topped_up)
