"""One fault run end to end: deploy, drive the grab and the redemptions under the nemesis, heal,
resolve every unknown outcome, let the persister catch up, check, and write the summary.

By hand (the longer form): `XFQ_FAULTS_LONG=1 XFQ_FAULTS_SECONDS=120 .venv/bin/pytest
tests/faults -m slow -s` (see test_faults.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from faults import checks
from faults.campaign import OPENS_AT, spec_text
from faults.deployment import Deployment
from faults.history import History
from faults.nemesis import Nemesis
from faults.workload import Holding, Workload
from xfq.simulation.over_http import DemoIdentityProvider
from xfq.spec import parse_campaign

ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "faults"
DRAIN_TIMEOUT_S = 60.0
RESOLVE_ROUNDS = 60


@dataclass(frozen=True)
class Plan:
    label: str
    people: int = 300
    grab_s: float = 20.0
    redeem_s: float = 20.0
    concurrency: int = 24
    timeout_s: float = 2.5  # the client's: past it, the outcome is unknown
    seed: int = 8
    stock_scale: int = 1  # the campaign's counts (220 vouchers) times this


def _held(history: History) -> list[Holding]:
    found = {}
    for op in history.of_kind("claim"):
        for a in op.answers():
            if a.code == "issued":
                v = a.body["voucher"]
                found[v["id"]] = Holding(v["id"], op.actor, v["type_id"])
    return sorted(found.values(), key=lambda h: h.voucher_id)


async def _drive(plan: Plan, deployment: Deployment, nemesis: Nemesis, history: History) -> None:
    idp, now = deployment.idp, deployment.now
    workload = Workload(deployment.base_url, idp, now, history, plan.seed, plan.timeout_s)
    try:
        await workload.enroll_tills()
        nemesis.start()
        await workload.grab(plan.people, plan.grab_s, plan.concurrency)
        await workload.redeem_all(_held(history), plan.redeem_s, plan.concurrency)
        await asyncio.to_thread(nemesis.stop)
        await asyncio.to_thread(deployment.wait_healthy)
        await workload.resolve(RESOLVE_ROUNDS, plan.concurrency)
    finally:
        await workload.close()


def _drain(deployment: Deployment, history: History) -> float | None:
    """Seconds until the persister moved every claim Redis issued, None if it did not."""
    start = time.monotonic()
    while time.monotonic() - start < DRAIN_TIMEOUT_S:
        deployment.supervise()
        redis_count = int(deployment.redis.cli("XLEN", _stream(deployment)))
        if deployment.ledger_vouchers() >= redis_count:
            return round(time.monotonic() - start, 2)
        time.sleep(0.25)
    return None


def _stream(deployment: Deployment) -> str:
    from xfq.adapters.redis.layout import Layout

    return Layout("faults", 1).stream(0)


def fault_run(plan: Plan, workdir: Path) -> dict[str, Any]:
    spec = workdir / "campaign.toml"
    spec.write_text(spec_text(plan.stock_scale), encoding="utf-8")
    campaign = parse_campaign(spec.read_text(encoding="utf-8"), str(spec))
    idp = DemoIdentityProvider(environment="development")
    deployment = Deployment(workdir, spec, idp, OPENS_AT + timedelta(minutes=1))
    history = History()
    nemesis = Nemesis(deployment, plan.seed)
    started = time.monotonic()
    try:
        deployment.start()
        asyncio.run(_drive(plan, deployment, nemesis, history))
        drained_s = _drain(deployment, history)
        redis, postgres = deployment.redis_url, deployment.postgres_url
        findings = checks.claim_findings(history, postgres, campaign)
        findings += checks.redemption_findings(history, postgres)
        findings.append(checks.stores_agree(redis, postgres, campaign))
        findings.append(checks.xfq_reconcile(history, redis, postgres))
    finally:
        deployment.close()
    summary = {
        "plan": asdict(plan),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - started, 1),
        "faults_injected": dict(sorted(nemesis.injected.items())),
        "faults_total": sum(nemesis.injected.values()),
        "faults_skipped": dict(sorted(nemesis.skipped.items())),
        "fault_errors": nemesis.errors,
        "restarts_by_supervisor": deployment.restarts,
        "proxy_connections_reset": _resets(deployment),
        "requests": history.summary(),
        "persister_caught_up_s": drained_s,
        "checks": [asdict(f) for f in findings],
        "all_checks_hold": all(f.ok for f in findings),
        "timeline": nemesis.log,
    }
    _write(summary, plan.label)
    return summary


def _resets(deployment: Deployment) -> dict[str, int]:
    proxies = {"redis": deployment.redis_proxy, "postgresql": deployment.postgres_proxy}
    return {name: p.resets for name, p in proxies.items() if p is not None}


def _write(summary: dict[str, Any], label: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = ARTIFACTS / f"{label}-{stamp}.json"
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    (ARTIFACTS / f"{label}-latest.json").write_text(text, encoding="utf-8")
    print(text)
    print(f"summary written to {path}")
    return path
