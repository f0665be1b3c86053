"""Redis against the ledger: stock left + claims issued = count, the ledger holds every claim
Redis issued, and each person's counts agree; `repair` moves what the persister has not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from xfq.adapters.redis.connect import SyncRedis
from xfq.adapters.redis.layout import Layout
from xfq.adapters.redis.persister import complete_move, entries, insert_missing, voucher_of
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.campaign import Campaign
from xfq.domain.voucher import Voucher
from xfq.services.reconcile import Check

COMMIT_TIMEOUT_S = 120.0


@dataclass
class RedisState:
    left: Counter[str] = field(default_factory=Counter)
    issued: Counter[str] = field(default_factory=Counter)
    in_transit: Counter[str] = field(default_factory=Counter)  # lent, not yet received
    person_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    streamed: dict[str, tuple[Voucher, str]] = field(default_factory=dict)
    open_moves: list[dict[str, str]] = field(default_factory=list)


def read_redis(redis: SyncRedis, layout: Layout, campaign: Campaign) -> RedisState:
    state = RedisState()
    types = [t.id for r in campaign.rounds for t in r.types]
    for shard in range(layout.shards):
        for type_id in types:
            state.left[type_id] += int(str(redis.get(layout.stock(shard, type_id)) or 0))
        issued: dict[Any, Any] = redis.hgetall(layout.issued(shard))
        for type_id, n in issued.items():
            state.issued[type_id] += int(n)
        _read_people(redis, layout, shard, state)
        _read_stream(redis, layout, campaign, shard, state)
    return state


def _read_people(redis: SyncRedis, layout: Layout, shard: int, state: RedisState) -> None:
    for person in redis.sscan_iter(layout.people(shard)):
        counts: dict[Any, Any] = redis.hgetall(layout.person(shard, str(person)))
        for name, n in counts.items():
            if name.startswith("t:"):
                state.person_counts[(str(person), name[2:])] += int(n)


def _read_stream(
    redis: SyncRedis, layout: Layout, campaign: Campaign, shard: int, state: RedisState
) -> None:
    for _id, fields in entries(redis, layout.stream(shard)):
        if "v" in fields:
            state.streamed[fields["v"]] = voucher_of(campaign, fields)
        elif "m" in fields:
            to = int(fields["to"])
            if not redis.sismember(f"{layout.tag(to)}:moves", fields["m"]):
                state.in_transit[fields["t"]] += int(fields["n"])
                state.open_moves.append(fields)


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
    types = [t for r in campaign.rounds for t in r.types]
    unbalanced = [
        t.id
        for t in types
        if state.left[t.id] + state.issued[t.id] + state.in_transit[t.id] != t.count
    ]
    missing = set(state.streamed) - ledger_ids
    unknown = ledger_ids - set(state.streamed)
    disagree = [k for k in person_held.keys() | state.person_counts.keys()
                if person_held[k] != state.person_counts[k]]  # fmt: skip
    left, issued = sum(state.left.values()), sum(state.issued.values())
    return [
        Check(
            8,
            "Redis stock balances",
            not unbalanced,
            f"{left:,} left + {issued:,} issued + {sum(state.in_transit.values())} moving "
            f"between shards = count for {len(types) - len(unbalanced)}/{len(types)} types"
            + (f"; off: {', '.join(unbalanced)}" if unbalanced else ""),
        ),
        Check(
            9,
            "every claim Redis issued is in the ledger",
            not missing and not unknown and issued == len(state.streamed),
            f"{len(state.streamed):,} streamed, {len(missing)} not yet in the ledger "
            f"(xfq reconcile --repair moves them), {len(unknown)} in the ledger but not in Redis",
        ),
        Check(
            10,
            "per-person counts agree",
            not disagree,
            f"{len(state.person_counts):,} person/type counts in Redis, "
            f"{len(disagree)} differ from the ledger",
        ),
    ]


def repair_gaps(redis: SyncRedis, layout: Layout, campaign: Campaign, ledger: SqlLedger) -> int:
    """Insert what Redis issued and the ledger lacks; finish moves; the vouchers inserted."""
    state = read_redis(redis, layout, campaign)
    for fields in state.open_moves:
        complete_move(redis, layout, fields)
    claims = list(state.streamed.values())
    return ledger.write(insert_missing(claims)).result(COMMIT_TIMEOUT_S)
