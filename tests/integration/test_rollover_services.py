"""Rollover and the server's scheduled money jobs on a real SQLite ledger: a two-round campaign
whose first round's leftovers feed the second, week by week; on the embedded claim engine, and
on a real Redis that is away when the rollover is recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner, Result

import spec_text
from servers.postgres_fixtures import LedgerDb
from servers.redis_fixtures import own_redis_server  # noqa: F401
from servers.redis_servers import RedisServer
from xfq import cli, housekeeping
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.redis.engine import RedisClaimEngine
from xfq.adapters.redis.persister import Persister
from xfq.adapters.redis.reconcile import check_redis
from xfq.adapters.sql.audit import iter_entries
from xfq.adapters.sql.figures import gather
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.api.app import create_app
from xfq.api.auth.tokens import Role
from xfq.bootstrap import Container, build, redis_persister
from xfq.cli import app
from xfq.config import Settings
from xfq.domain.audit import verify_chain
from xfq.domain.checkout import CheckoutCode, Order
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.errors import StorageUnavailable
from xfq.domain.refund import RefundOutcome
from xfq.domain.voucher import Voucher
from xfq.housekeeping import Housekeeper, Pass, apply_rollover, run_pass
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.services.checkout import RedeemRequest, submit_redeem
from xfq.services.grab import claim
from xfq.services.reconcile import Check, reconcile
from xfq.services.refund import RefundRequest, submit_refund
from xfq.services.rollover import (
    ClaimsNotPersisted,
    RolloverRefused,
    effective_budgets,
    roll_over,
)

TZ = ZoneInfo("Asia/Shanghai")
SPEC = (
    spec_text.campaign("weekly", "Week by week", ("retail", "catering")).replace(
        "enabled = false\nsources = []", 'enabled = true\nsources = ["unclaimed", "expired"]'
    )
    + spec_text.round_("r1", 1, "2022-02-26T10:00:00", "2022-03-05T00:00:00")
    + spec_text.voucher_type("r1-retail-180-40", 180, 40, 3)
    + spec_text.voucher_type("r1-catering-200-50", 200, 50, 2)
    + spec_text.round_("r2", 2, "2022-03-05T10:00:00", "2022-03-12T00:00:00", name="Round two")
    + spec_text.voucher_type("r2-retail-180-40", 180, 40, 2)
    + spec_text.voucher_type("r2-catering-100-20", 100, 20, 1)
)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2022, month, day, hour, minute, tzinfo=TZ)


def built_on(database_url: str, tmp_path: Path) -> tuple[Container, SimulatedClock]:
    """The weekly campaign on the embedded engine, a shop enrolled, at round 1's opening."""
    spec = tmp_path / "weekly.toml"
    spec.write_text(SPEC, encoding="utf-8")
    clock = SimulatedClock(at(2, 26, 10))
    built = build(Settings(database_url=database_url, spec_path=spec), clock)
    built.ledger.enroll_merchant("shop", "Shop", "retail", clock.now())
    return built, clock


@pytest.fixture
def container(tmp_path: Path) -> Iterator[tuple[Container, SimulatedClock]]:
    built, clock = built_on(f"sqlite:///{tmp_path / 'l.db'}", tmp_path)
    yield built, clock
    built.close()


def grab(c: Container, person: str, type_id: str) -> ClaimAnswer:
    citizen = Citizen(person, Residency.PERMANENT, in_city=True)
    return claim(c.running()[1], c.clock, ClaimRequest(citizen, type_id, f"{person}-{type_id}"))


def spend(c: Container, voucher: Voucher) -> None:
    request = RedeemRequest(
        "shop", voucher.person_id, voucher.id, f"o-{voucher.id}", Order(200_00, 0), voucher.id
    )
    campaign = c.running()[0]
    answer = submit_redeem(c.ledger, campaign, c.ids, c.clock.now(), request).result()
    assert answer.code is CheckoutCode.OK


def first_round_week(c: Container, clock: SimulatedClock) -> None:
    """Two of round 1's three retail vouchers are grabbed; one is spent, one expires unused;
    nobody takes the two catering vouchers."""
    alice = grab(c, "alice", "r1-retail-180-40").voucher
    assert alice is not None and grab(c, "bob", "r1-retail-180-40").code is ClaimCode.ISSUED
    clock.set(at(3, 1, 12))
    spend(c, alice)


def test_leftovers_of_round_1_become_extra_vouchers_of_round_2_once(
    container: tuple[Container, SimulatedClock],
) -> None:
    c, clock = container
    first_round_week(c, clock)
    campaign, engine = c.running()
    store = SqlRolloverStore(c.ledger.engine)
    with pytest.raises(RolloverRefused, match="usable until 2022-03-05T00:00:00"):
        roll_over(store, c.ledger, campaign, "r1", at(3, 4, 23, 59))
    clock.set(at(3, 5))
    done = apply_rollover(c, "r1")
    moves = {m.from_type_id: m for m in done.moves}
    retail, catering = moves["r1-retail-180-40"], moves["r1-catering-200-50"]
    assert (retail.unclaimed, retail.expired, retail.added_count) == (1, 1, 2)
    assert retail.into_type_id == "r2-retail-180-40"
    assert (catering.unclaimed, catering.value_fen) == (2, 100_00)
    assert (catering.into_type_id, catering.added_count) == ("r2-catering-100-20", 5)  # by value
    assert engine.stock()["r2-retail-180-40"] == 4 and engine.stock()["r2-catering-100-20"] == 6
    assert effective_budgets(campaign, store)["r2"] == (2 * 40 + 20 + 2 * 40 + 5 * 20) * 100

    again = apply_rollover(c, "r1")  # idempotent: nothing moves twice
    assert not again.newly_done and again.moves == done.moves
    assert engine.stock()["r2-retail-180-40"] == 4
    entries = list(iter_entries(c.ledger.engine))
    rolled = [e for e in entries if e.action == "rollover"]
    assert [(e.subject, e.actor) for e in rolled] == [("r1", "xfq")]  # once, by the system
    assert '"into_round":"r2"' in rolled[0].details_json and verify_chain(entries) is None


def test_a_restarted_engine_counts_the_rolled_over_stock_and_reconciliation_includes_it(
    container: tuple[Container, SimulatedClock], tmp_path: Path
) -> None:
    c, clock = container
    first_round_week(c, clock)
    clock.set(at(3, 5))
    apply_rollover(c, "r1")
    c.load_campaign(SPEC, "the same spec again", clock.now())  # the engine is rebuilt
    clock.set(at(3, 5, 10))
    answers = [grab(c, f"p{i}", "r2-retail-180-40").code for i in range(5)]
    assert answers == [ClaimCode.ISSUED] * 4 + [ClaimCode.SOLD_OUT]  # 2 declared + 2 rolled

    campaign = c.running()[0]
    checks = reconcile(campaign, gather(c.ledger.engine, campaign=campaign))
    oversold = checks[0]
    assert oversold.ok, oversold.detail
    assert "6 issued of 15 (7 rolled over)" in oversold.detail
    assert "round r2 paid 0.00 of 280.00 yuan (budget 100.00 + rollover)" in oversold.detail
    with c.ledger.engine.begin() as db:  # the rollover record lost: the ledger looks oversold
        db.exec_driver_sql("DELETE FROM rollovers")
    assert not reconcile(campaign, gather(c.ledger.engine, campaign=campaign))[0].ok


def test_the_servers_scheduled_job_expires_at_the_end_of_validity_and_rolls_over(
    container: tuple[Container, SimulatedClock],
) -> None:
    c, clock = container
    first_round_week(c, clock)
    clock.set(at(3, 4, 23, 59))
    assert run_pass(c).expired == 0 and run_pass(c).rolled_over == ()
    clock.set(at(3, 5))  # midnight after round 1's last day, in Taiyuan
    done = run_pass(c)
    assert done.expired == 1 and done.rolled_over == ("r1",)
    assert c.running()[1].stock()["r2-retail-180-40"] == 4
    assert run_pass(c) == type(done)(0, ())  # a re-run does nothing more


def test_the_housekeeper_thread_runs_passes_until_stopped(
    container: tuple[Container, SimulatedClock],
) -> None:
    c, clock = container
    first_round_week(c, clock)
    clock.set(at(3, 5))
    jobs = Housekeeper(c, interval_s=0.01)
    jobs.start()
    try:
        for _ in range(1000):  # bounded wait for the first pass; no timing is asserted
            if SqlRolloverStore(c.ledger.engine).moves():
                break
            time.sleep(0.01)
    finally:
        jobs.stop()
    assert c.running()[1].stock()["r2-retail-180-40"] == 4


def test_the_engine_alone_rebuilds_rolled_over_stock_from_the_ledger(
    container: tuple[Container, SimulatedClock], tmp_path: Path
) -> None:
    c, clock = container
    first_round_week(c, clock)
    clock.set(at(3, 5))
    apply_rollover(c, "r1")
    campaign, engine = c.running()
    engine.close()  # hand the ledger to a fresh engine, as a restarted process would
    fresh = EmbeddedClaimEngine(campaign, c.ledger, c.ids, tmp_path / "fresh.lock")
    try:
        assert fresh.stock()["r2-retail-180-40"] == 4
        assert fresh.stock()["r1-retail-180-40"] == 1  # round 1's own counts are untouched
    finally:
        fresh.close()


# --- on the Redis claim engine ------------------------------------------------------------------


@pytest.fixture
def on_redis(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> Iterator[tuple[Container, SimulatedClock, RedisServer, Persister]]:
    """The weekly campaign served by the Redis engine; its persister is drained on demand."""
    spec = tmp_path / "weekly.toml"
    spec.write_text(SPEC, encoding="utf-8")
    clock = SimulatedClock(at(2, 26, 10))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'l.db'}",
        spec_path=spec,
        redis_url=own_redis_server.url,
        redis_persister=False,
    )
    built = build(settings, clock)
    persister = redis_persister(own_redis_server.url, built.running()[0], built.ledger, 1)
    yield built, clock, own_redis_server, persister
    built.close()


def redis_checks(c: Container) -> list[Check]:
    campaign, engine = c.running()
    assert isinstance(engine, RedisClaimEngine)
    return check_redis(engine.redis, engine.layout, campaign, c.ledger)


def reconcile_cli(c: Container, *more: str) -> Result:
    assert c.settings.redis_url is not None
    ledger = c.settings.database_url
    return CliRunner().invoke(app, ["reconcile", ledger, "--redis", c.settings.redis_url, *more])


def repaired(c: Container) -> None:
    done = reconcile_cli(c, "--repair")
    assert done.exit_code == 0, done.output


RETRIES: dict[str, Callable[[Container], object]] = {
    "housekeeping pass": run_pass,
    "engine start": lambda c: c.load_campaign(SPEC, "the same spec again", c.clock.now()),
    "reconcile --repair": repaired,
}


def round_1_grabbed_and_ended(c: Container, clock: SimulatedClock, persister: Persister) -> None:
    """Two of round 1's three retail vouchers grabbed (and persisted); its vouchers expired."""
    for who in ("alice", "bob"):
        assert grab(c, who, "r1-retail-180-40").code is ClaimCode.ISSUED
    persister.drain()
    clock.set(at(3, 5))


def rolled_over_while_redis_was_away(
    c: Container, clock: SimulatedClock, server: RedisServer, persister: Persister
) -> None:
    """Round 1: two of its three retail vouchers grabbed, both expire unused; at its end the
    rollover is recorded while Redis is down (it went away just after telling that every claim
    of round 1 is in the ledger), then Redis comes back (on its own files)."""
    round_1_grabbed_and_ended(c, clock, persister)
    engine = c.running()[1]
    asked = engine.unpersisted

    def then_redis_dies(*args: Any) -> dict[str, int]:
        found = asked(*args)
        server.kill()
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "unpersisted", then_redis_dies)
        with pytest.raises(StorageUnavailable):
            run_pass(c)  # the ledger records the rollover; its top-up cannot reach Redis
    assert [m.added_count for m in SqlRolloverStore(c.ledger.engine).moves()] == [5, 3]
    server.start()


ROLLED = {"r2-retail-180-40": 2 + 3, "r2-catering-100-20": 1 + 5}  # declared + rolled in


@pytest.mark.parametrize("retry", list(RETRIES))
def test_a_rollover_while_redis_was_away_reaches_redis_once_whatever_retries_it(
    on_redis: tuple[Container, SimulatedClock, RedisServer, Persister], retry: str
) -> None:
    c, clock, server, persister = on_redis
    rolled_over_while_redis_was_away(c, clock, server, persister)
    RETRIES[retry](c)
    stock = c.running()[1].stock()
    assert {t: stock[t] for t in ROLLED} == ROLLED
    for again in RETRIES.values():  # every retry path once more: nothing is added twice
        again(c)
    assert c.running()[1].stock() == stock
    clock.set(at(3, 5, 10))
    answers = [grab(c, f"p{i}", "r2-retail-180-40").code for i in range(6)]
    assert answers == [ClaimCode.ISSUED] * 5 + [ClaimCode.SOLD_OUT]
    persister.drain()
    checks = redis_checks(c)
    assert all(check.ok for check in checks), checks
    campaign = c.running()[0]
    assert reconcile(campaign, gather(c.ledger.engine, campaign=campaign))[0].ok


def test_the_housekeeper_says_once_that_redis_is_away_and_gives_the_stock_when_it_is_back(
    on_redis: tuple[Container, SimulatedClock, RedisServer, Persister],
    caplog: pytest.LogCaptureFixture,
) -> None:
    c, clock, server, persister = on_redis
    round_1_grabbed_and_ended(c, clock, persister)
    server.kill()
    caplog.set_level(logging.WARNING, logger="xfq.housekeeping")
    jobs = Housekeeper(c, interval_s=0.01)
    jobs.start()
    try:
        for _ in range(1000):  # bounded: the first pass failing on Redis
            if caplog.records:
                break
            time.sleep(0.01)
        time.sleep(0.2)  # some twenty more failing passes
        server.start()
        for _ in range(1000):
            if "resumed" in caplog.text:
                break
            time.sleep(0.01)
    finally:
        jobs.stop()
    waits = [r for r in caplog.records if "waits for its storage" in r.getMessage()]
    assert len(waits) == 1 and waits[0].exc_info is None  # one line, no traceback
    assert "resumed" in caplog.text
    stock = c.running()[1].stock()
    assert {t: stock[t] for t in ROLLED} == ROLLED


def test_a_type_sold_out_before_its_late_top_up_is_claimable_after_any_process_gave_it(
    on_redis: tuple[Container, SimulatedClock, RedisServer, Persister],
) -> None:
    c, clock, server, persister = on_redis
    rolled_over_while_redis_was_away(c, clock, server, persister)
    clock.set(at(3, 5, 10))  # round 2 opens before any retry: its 2 declared vouchers go
    engine = c.running()[1]
    assert isinstance(engine, RedisClaimEngine)
    with contextlib.suppress(StorageUnavailable):  # its pooled connection died with Redis
        grab(c, "p0", "r2-retail-180-40")
    answers = [grab(c, f"p{i}", "r2-retail-180-40").code for i in range(3)]  # p0 retries
    assert answers == [ClaimCode.ISSUED] * 2 + [ClaimCode.SOLD_OUT]
    assert engine.wait_sold_out("r2-retail-180-40", 30)  # answered from memory from now
    other = RedisClaimEngine(c.running()[0], server.url, RandomIds())  # another worker
    try:
        assert other.top_up(SqlRolloverStore(c.ledger.engine).moves()) == 3 + 5
    finally:
        other.close()
    assert run_pass(c).late_stock == 0  # this process adds nothing, and asks Redis again
    answers = [grab(c, f"q{i}", "r2-retail-180-40").code for i in range(4)]
    assert answers == [ClaimCode.ISSUED] * 3 + [ClaimCode.SOLD_OUT]


def test_reconcile_names_the_missing_top_up_and_repair_adds_it_once(
    on_redis: tuple[Container, SimulatedClock, RedisServer, Persister],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c, clock, server, persister = on_redis
    monkeypatch.setattr(cli.console, "width", 1000)  # the checks' table on one line each
    rolled_over_while_redis_was_away(c, clock, server, persister)
    late = {check.number: check for check in redis_checks(c)}[11]
    assert not late.ok
    assert "0/2 rollover moves' stock received by Redis" in late.detail
    assert "3 voucher(s) of r2-retail-180-40 (round r2) rolled over from r1-retail-180-40" in (
        late.detail
    )
    found = reconcile_cli(c)
    assert found.exit_code == 1, found.output
    assert "rolled-over stock is in Redis" in found.output
    assert "5 voucher(s) of r2-catering-100-20 (round r2)" in found.output

    fixed = reconcile_cli(c, "--repair")
    assert fixed.exit_code == 0, fixed.output
    assert (
        "repair: 3 voucher(s) of r2-retail-180-40 (round r2), rolled over from "
        "r1-retail-180-40 (round r1), added to Redis's stock"
    ) in fixed.output
    again = reconcile_cli(c, "--repair")
    assert again.exit_code == 0 and "added to Redis" not in again.output, again.output
    assert "2/2 rollover moves' stock received by Redis" in again.output
    stock = c.running()[1].stock()
    assert {t: stock[t] for t in ROLLED} == ROLLED
    assert run_pass(c).late_stock == 0

    server.kill()  # the operator's next run finds Redis away: a failed check, no traceback
    away = reconcile_cli(c, "--repair")
    assert away.exit_code == 1 and isinstance(away.exception, SystemExit), away.output
    assert "Redis did not answer" in away.output and "run it again once Redis is back" in (
        away.output
    )


def test_a_redis_replaced_by_an_empty_one_is_loaded_with_rolled_over_stock_once(
    on_redis: tuple[Container, SimulatedClock, RedisServer, Persister],
) -> None:
    c, clock, server, persister = on_redis
    round_1_grabbed_and_ended(c, clock, persister)
    assert run_pass(c).rolled_over == ("r1",)  # Redis up: topped up at once
    server.flush()  # a new, empty Redis: a load writes the stock from the ledger, marks with it
    for path in ("engine start", *RETRIES):  # the load first, then every retry finds it done
        RETRIES[path](c)
    stock = c.running()[1].stock()
    assert {t: stock[t] for t in ROLLED} == ROLLED
    checks = redis_checks(c)
    assert all(check.ok for check in checks), checks


# --- claims Redis issued that the persister has not moved yet --------------------------------

UNCLAIMED_ONLY = SPEC.replace('sources = ["unclaimed", "expired"]', 'sources = ["unclaimed"]')


@pytest.fixture
def unclaimed_only_on_redis(
    on_redis: tuple[Container, SimulatedClock, RedisServer, Persister],
) -> tuple[Container, SimulatedClock, Persister]:
    """The weekly campaign whose policy rolls only never-claimed vouchers over: a claim counted
    as unclaimed there is value issued twice, not an expired one relabelled."""
    c, clock, _server, persister = on_redis
    c.load_campaign(UNCLAIMED_ONLY, "unclaimed only", clock.now())
    return c, clock, persister


def round_1_claimed_but_not_persisted(c: Container, clock: SimulatedClock) -> None:
    """Two of round 1's three retail vouchers are issued by Redis; the persister is not running,
    so the ledger holds neither when round 1 has finished (its vouchers' validity over)."""
    for who in ("alice", "bob"):
        assert grab(c, who, "r1-retail-180-40").code is ClaimCode.ISSUED
    clock.set(at(3, 5))
    assert list(c.ledger.issued_claims()) == []


def r2_stock(c: Container) -> dict[str, int]:
    stock = c.running()[1].stock()
    return {t: stock[t] for t in ROLLED}


def test_the_scheduled_rollover_waits_for_the_persister_then_rolls_only_the_unclaimed(
    unclaimed_only_on_redis: tuple[Container, SimulatedClock, Persister],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c, clock, persister = unclaimed_only_on_redis
    monkeypatch.setattr(cli.console, "width", 1000)  # the checks' table on one line each
    round_1_claimed_but_not_persisted(c, clock)
    store = SqlRolloverStore(c.ledger.engine)
    waiting = run_pass(c)
    assert waiting.rolled_over == () and store.moves() == []
    assert waiting.waiting == (
        "round r1's rollover waits: 2 of its claims decided in the claim engine are not in the "
        "ledger yet (is the persister running?); it is computed once the persister has moved "
        "them",
    )
    assert r2_stock(c) == {"r2-retail-180-40": 2, "r2-catering-100-20": 1}  # nothing added
    with pytest.raises(ClaimsNotPersisted) as refused:
        apply_rollover(c, "r1")
    assert refused.value.unpersisted == 2

    assert persister.drain() == 2
    done = run_pass(c)
    assert done.rolled_over == ("r1",) and done.waiting == ()
    moves = {m.from_type_id: m for m in store.moves()}
    retail = moves["r1-retail-180-40"]
    assert (retail.unclaimed, retail.expired, retail.added_count) == (1, 0, 1)  # not 3
    assert (moves["r1-catering-200-50"].unclaimed, moves["r1-catering-200-50"].added_count) == (
        2,
        5,
    )
    assert r2_stock(c) == {"r2-retail-180-40": 2 + 1, "r2-catering-100-20": 1 + 5}
    # round 2: 100 yuan declared + 1 × 40 (retail) + 5 × 20 (catering's 100 yuan by value)
    assert effective_budgets(c.running()[0], store)["r2"] == 240_00
    checked = reconcile_cli(c)
    assert checked.exit_code == 0, checked.output
    assert "2 issued of 14 (6 rolled over)" in checked.output


def test_a_rollover_counts_claims_the_persister_moved_late_as_expired_not_unclaimed(
    on_redis: tuple[Container, SimulatedClock, RedisServer, Persister],
) -> None:
    c, clock, _server, persister = on_redis
    assert grab(c, "carol", "r1-retail-180-40").code is ClaimCode.ISSUED
    persister.drain()  # carol's claim is in the ledger; alice's and bob's are not
    for who in ("alice", "bob"):
        assert grab(c, who, "r1-retail-180-40").code is ClaimCode.ISSUED
    clock.set(at(3, 5))
    with pytest.raises(ClaimsNotPersisted, match="2 of its claims"):
        apply_rollover(c, "r1")
    persister.drain()
    done = apply_rollover(c, "r1")
    retail = {m.from_type_id: m for m in done.moves}["r1-retail-180-40"]
    assert (retail.unclaimed, retail.expired, retail.added_count) == (0, 3, 3)
    checked = reconcile_cli(c)
    assert checked.exit_code == 0, checked.output


def test_the_operator_route_answers_409_naming_the_unpersisted_claims_until_they_are_moved(
    unclaimed_only_on_redis: tuple[Container, SimulatedClock, Persister],
) -> None:
    c, clock, persister = unclaimed_only_on_redis
    round_1_claimed_but_not_persisted(c, clock)
    issuer = c.dev_issuer
    assert issuer is not None
    token = issuer.token("op1", Role.OPERATOR, clock.now())
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "roll-r1"}

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(c))
        async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
            return await client.post("/v1/ops/rounds/r1/rollover", headers=headers)

    refused = asyncio.run(post())
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "rollover_claims_unpersisted"
    assert "2 of its claims decided in the claim engine are not in the ledger" in problem["detail"]
    assert SqlRolloverStore(c.ledger.engine).moves() == []

    persister.drain()
    done = asyncio.run(post())  # the same key: a refusal is not kept as its answer
    assert done.status_code == 200, done.text
    moves = {m["from_type_id"]: m for m in done.json()["moves"]}
    assert moves["r1-retail-180-40"]["unclaimed"] == 1
    assert done.json()["effective_budget_fen"] == 240_00


def test_the_housekeeper_logs_one_line_while_the_rollover_waits(
    unclaimed_only_on_redis: tuple[Container, SimulatedClock, Persister],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c, clock, _persister = unclaimed_only_on_redis
    round_1_claimed_but_not_persisted(c, clock)
    passes: list[Pass] = []

    def counted(container: Container) -> Pass:
        passes.append(run_pass(container))
        return passes[-1]

    monkeypatch.setattr(housekeeping, "run_pass", counted)
    jobs = Housekeeper(c, interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="xfq.housekeeping"):
        jobs.start()
        try:
            for _ in range(1000):  # bounded wait for several passes; no timing is asserted
                if len(passes) >= 5:
                    break
                time.sleep(0.01)
        finally:
            jobs.stop()
    waits = [r.getMessage() for r in caplog.records if "rollover waits" in r.getMessage()]
    assert waits == [
        "housekeeping: round r1's rollover waits: 2 of its claims decided in the claim engine "
        "are not in the ledger yet (is the persister running?); it is computed once the "
        "persister has moved them"
    ]
    assert len(passes) >= 5 and SqlRolloverStore(c.ledger.engine).moves() == []
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per pass


def test_the_rollover_command_refuses_in_one_line_until_the_persister_has_moved_the_claims(
    unclaimed_only_on_redis: tuple[Container, SimulatedClock, Persister],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c, clock, persister = unclaimed_only_on_redis
    round_1_claimed_but_not_persisted(c, clock)
    assert c.settings.redis_url is not None
    monkeypatch.setenv("XFQ_REDIS_URL", c.settings.redis_url)  # as the server's environment
    monkeypatch.setattr(cli.errors, "width", 1000)
    monkeypatch.setattr(cli.console, "width", 1000)

    def rollover() -> int:
        argv = ["xfq", "rollover", c.settings.database_url, "r1", "--at", "2022-03-05T00:00:00"]
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as ended:
            cli.main()
        return int(ended.value.code or 0)

    assert rollover() == 2
    refused = capsys.readouterr()
    assert refused.err.strip().splitlines() == [
        "xfq: round r1's rollover waits: 2 of its claims decided in the claim engine are not "
        "in the ledger yet (is the persister running?); it is computed once the persister has "
        "moved them"
    ]
    assert SqlRolloverStore(c.ledger.engine).moves() == []

    persister.drain()
    assert rollover() == 0
    assert "effective budget 240.00 yuan" in capsys.readouterr().out
    run_pass(c)  # the server gives Redis the rolled-over stock
    checked = reconcile_cli(c)
    assert checked.exit_code == 0, checked.output


# --- reconciliation recomputes every recorded rollover from the ledger -------------------------


@pytest.fixture
def on_either_ledger(
    ledger_db: LedgerDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Container, SimulatedClock, LedgerDb]]:
    """The weekly campaign on a SQLite or a PostgreSQL ledger; `xfq reconcile`'s table unwrapped."""
    monkeypatch.setattr(cli.console, "width", 1000)
    built, clock = built_on(ledger_db.url, tmp_path)
    yield built, clock, ledger_db
    built.close()


def rollover_check(c: Container) -> Check:
    campaign = c.running()[0]
    checks = reconcile(campaign, gather(c.ledger.engine, campaign=campaign))
    return next(check for check in checks if check.name == "rollovers match the ledger")


def reconciled(c: Container) -> Result:
    """`xfq reconcile` on the container's ledger, in process (this worktree's code)."""
    return CliRunner().invoke(app, ["reconcile", c.settings.database_url])


def test_reconcile_finds_a_correct_rollover_and_a_refund_lapsed_after_it_in_the_ledger(
    on_either_ledger: tuple[Container, SimulatedClock, LedgerDb],
) -> None:
    c, clock, db = on_either_ledger
    first_round_week(c, clock)
    assert rollover_check(c).detail == "no rollover recorded"
    clock.set(at(3, 5))
    apply_rollover(c, "r1")
    check = rollover_check(c)
    assert check.ok and check.detail == (
        "2 move(s) of 1 round(s) recomputed from the ledger: 0 mismatch(es)"
    )
    # Alice's order is refunded after round 1's validity: her voucher lapses (redeemed ->
    # expired) and its 40 yuan, never paid, was not rolled: it stays with round 1.
    clock.set(at(3, 6, 12))
    request = RefundRequest("shop", db.scalar("SELECT id FROM redemptions"), 200_00, "rf-1")
    refunded = submit_refund(c.ledger, c.running()[0], c.ids, clock.now(), request).result()
    assert refunded.outcome is RefundOutcome.LAPSED
    check = rollover_check(c)
    assert check.ok, check.detail
    assert (
        "1 voucher(s) of r1-retail-180-40 lapsed by a refund after round r1 rolled over: "
        "40.00 yuan stays with round r1"
    ) in check.detail
    done = reconciled(c)
    assert done.exit_code == 0, done.output
    assert "rollovers match the ledger" in done.output


def test_reconcile_names_a_rollover_record_edited_in_the_ledger(
    on_either_ledger: tuple[Container, SimulatedClock, LedgerDb],
) -> None:
    c, clock, db = on_either_ledger
    first_round_week(c, clock)
    clock.set(at(3, 5))
    apply_rollover(c, "r1")  # retail: 1 unclaimed + 1 expired = 80 yuan, 2 vouchers added
    db.execute(
        "UPDATE rollovers SET unclaimed = 2, value_fen = 12000, added_count = 3 "
        "WHERE from_type_id = 'r1-retail-180-40'"
    )
    found = reconciled(c)
    assert found.exit_code == 1, found.output
    named = (
        "round r1 r1-retail-180-40: unclaimed recorded 2, found 1; value recorded 120.00, "
        "found 80.00; added recorded 3, found 2 -> 40.00 yuan over-rolled, 40.00 yuan "
        "over-issued as vouchers"
    )
    assert named in found.output
    check = rollover_check(c)
    assert not check.ok
    assert check.detail == (
        f"2 move(s) of 1 round(s) recomputed from the ledger: 1 mismatch(es); {named}"
    )


LATE_CLAIM = {  # policy -> what reconcile says of a claim that reached the ledger late
    "unclaimed and expired": (
        SPEC,
        "round r1 r1-retail-180-40: unclaimed recorded 1, found 0; expired recorded 1, found 2 "
        "-> same value rolled",
    ),
    "unclaimed only": (
        UNCLAIMED_ONLY,
        "round r1 r1-retail-180-40: unclaimed recorded 1, found 0; value recorded 40.00, found "
        "0.00; added recorded 1, found 0 -> 40.00 yuan over-rolled, 40.00 yuan over-issued as "
        "vouchers",
    ),
}


@pytest.mark.parametrize("policy", list(LATE_CLAIM))
def test_reconcile_names_a_claim_of_the_round_that_reached_the_ledger_after_its_rollover(
    on_either_ledger: tuple[Container, SimulatedClock, LedgerDb], policy: str
) -> None:
    """As a persister that was behind did before rollovers waited for it: the rollover counted
    carol's claim as unclaimed. Every other check holds; this one names the move."""
    c, clock, db = on_either_ledger
    spec, named = LATE_CLAIM[policy]
    c.load_campaign(spec, policy, clock.now())
    first_round_week(c, clock)
    clock.set(at(3, 5))
    apply_rollover(c, "r1")
    db.execute(
        "INSERT INTO vouchers (id, type_id, round_id, category, person_id, claim_key, state, "
        "issued_at_us, valid_from_us, valid_until_us) SELECT 'late-carol', type_id, round_id, "
        "category, 'carol', 'carol-key', 'issued', issued_at_us, valid_from_us, valid_until_us "
        "FROM vouchers WHERE person_id = 'bob'"
    )
    db.execute(
        "INSERT INTO voucher_events (voucher_id, event, at_us, ref) SELECT 'late-carol', event, "
        "at_us, ref FROM voucher_events e JOIN vouchers v ON v.id = e.voucher_id "
        "WHERE v.person_id = 'bob' AND e.event = 'issue'"
    )
    found = reconciled(c)
    assert found.exit_code == 1, found.output
    assert named in found.output
    checks = reconcile(c.running()[0], gather(c.ledger.engine, campaign=c.running()[0]))
    assert [check.name for check in checks if not check.ok] == ["rollovers match the ledger"]
