"""After a fault run: the history against the PostgreSQL ledger and Redis, check by check."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from faults.campaign import PER_ROUND, PER_TYPE
from faults.history import History, Operation
from xfq.adapters.redis.connect import sync_client
from xfq.adapters.redis.layout import Layout, shards_key
from xfq.adapters.redis.reconcile import read_redis
from xfq.domain.campaign import Campaign


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=10) as connection:
        return list(connection.execute(sql.encode()).fetchall())


def _issued(op: Operation) -> set[str]:
    return {a.body["voucher"]["id"] for a in op.answers() if a.code == "issued"}


def _refused_yet_held(ops: list[Operation], held: set[str]) -> list[str]:
    """Keys whose known answer was a refusal, yet the ledger holds an effect of them."""
    return [op.key for op in ops if op.last.known and op.last.status != 201 and op.key in held]


def claim_findings(history: History, url: str, campaign: Campaign) -> list[Finding]:
    rows = _rows(url, "SELECT id, person_id, type_id, claim_key FROM vouchers")
    by_id = {r[0]: r for r in rows}
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for voucher_id, person, _type, key in rows:
        by_key[(person, key)].append(voucher_id)
    claims = history.of_kind("claim")
    answered = {v: op for op in claims for v in _issued(op)}
    lost = [v for v, op in answered.items() if by_id.get(v, ("", op.actor))[1] != op.actor]
    twice = [k for k, ids in by_key.items() if len(ids) > 1]
    split = [op.key for op in claims if len(_issued(op)) > 1]
    moved = [
        op.key for op in claims if _issued(op) and by_key[(op.actor, op.key)] != sorted(_issued(op))
    ]
    counts = {t.id: t.count for r in campaign.rounds for t in r.types}
    per_type = Counter(r[2] for r in rows)
    over = {t: n for t, n in per_type.items() if n > counts[t]}
    refused = _refused_yet_held(claims, {key for (_person, key) in by_key})
    held = Counter((r[1], r[2]) for r in rows)
    per_person = Counter(r[1] for r in rows)
    breach = [k for k, n in held.items() if n > PER_TYPE]
    breach += [p for p, n in per_person.items() if n > PER_ROUND]
    unknown = [op.key for op in claims if not op.last.known]
    return [
        Finding("no oversell", not over, f"issued per type {dict(per_type)} ≤ {counts}"),
        Finding("no per-person limit breach", not breach, f"{len(breach)} breaches"),
        Finding(
            "every `issued` answer is in the ledger",
            not lost,
            f"{len(answered)} vouchers answered issued, {len(lost)} missing",
        ),
        Finding(
            "one effect per idempotency key",
            not twice and not split and not moved and not refused,
            f"{len(twice)} keys with two vouchers, {len(split)} with two answers, "
            f"{len(moved)} answered another voucher than the ledger holds, "
            f"{len(refused)} refused yet holding one",
        ),
        Finding("every unknown claim resolved", not unknown, f"{len(unknown)} still unknown"),
    ]


def redemption_findings(history: History, url: str) -> list[Finding]:
    redemptions = _rows(url, "SELECT id, voucher_id, idempotency_key, state FROM redemptions")
    refunds = _rows(url, "SELECT id, redemption_id, idempotency_key FROM refunds")
    redeemed_by_key = Counter(r[2] for r in redemptions)
    refunded_by_key = Counter(r[2] for r in refunds)
    ids = {r[0] for r in redemptions}
    posted = Counter(r[1] for r in redemptions if r[3] == "posted")
    ops = history.of_kind("redeem") + history.of_kind("refund")
    acked = [op for op in ops if any(a.status == 201 for a in op.answers())]
    missing = [
        op.key
        for op in acked
        if (redeemed_by_key if op.kind == "redeem" else refunded_by_key)[op.key] != 1
    ]
    wrong = [
        op.key
        for op in history.of_kind("redeem")
        for a in op.answers()
        if a.status == 201 and a.body["redemption"]["id"] not in ids
    ]
    double_keys = [k for k, n in (redeemed_by_key + refunded_by_key).items() if n > 1]
    double_keys += _refused_yet_held(ops, set(redeemed_by_key) | set(refunded_by_key))
    double_spent = [v for v, n in posted.items() if n > 1]
    unknown = [op.key for op in ops if not op.last.known]
    return [
        Finding(
            "no voucher redeemed twice at once",
            not double_spent,
            f"{len(double_spent)} vouchers with two posted redemptions",
        ),
        Finding(
            "every acknowledged redemption and refund is in the ledger",
            not missing and not wrong,
            f"{len(acked)} acknowledged, {len(missing) + len(wrong)} missing",
        ),
        Finding(
            "one effect per redemption/refund key",
            not double_keys,
            f"{len(double_keys)} keys with two effects, or refused yet with one",
        ),
        Finding("every unknown redemption/refund resolved", not unknown, f"{len(unknown)} unknown"),
    ]


def stores_agree(redis_url: str, postgres_url: str, campaign: Campaign) -> Finding:
    """The vouchers Redis issued (its streams) are exactly the ledger's, field by field."""
    redis = sync_client(redis_url, cluster=False)
    try:
        layout = Layout(campaign.id, int(str(redis.get(shards_key(campaign.id)))))
        state = read_redis(redis, layout, campaign)
    finally:
        redis.close()
    in_redis = {(v.id, v.person_id, v.type_id, key) for v, key in state.streamed.values()}
    ledger = {
        (r[0], r[1], r[2], r[3])
        for r in _rows(postgres_url, "SELECT id, person_id, type_id, claim_key FROM vouchers")
    }
    detail = (
        f"{len(in_redis)} claims in Redis, {len(ledger)} in PostgreSQL, "
        f"{len(in_redis - ledger)} only in Redis, {len(ledger - in_redis)} only in PostgreSQL"
    )
    return Finding("the ledger is equal in Redis and PostgreSQL", in_redis == ledger, detail)


def xfq_reconcile(history: History, redis_url: str, postgres_url: str) -> Finding:
    """`xfq reconcile` with the Redis checks and every voucher id answered `issued`."""
    answered = sorted(v for op in history.of_kind("claim") for v in _issued(op))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(answered))
    command = [sys.executable, "-m", "xfq", "reconcile", postgres_url, "--redis", redis_url]
    command += ["--answers", f.name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    Path(f.name).unlink()
    failed = [line.strip() for line in done.stdout.splitlines() if " NO " in line]
    detail = f"exit {done.returncode}" + (f": {'; '.join(failed)}" if failed else "")
    if done.returncode != 0 and not failed:
        detail += f"\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
    return Finding("xfq reconcile (with Redis) clean", done.returncode == 0, detail)
