"""The Redis claim engine against real Redis servers: contention, retries, crashes, reconcile.

Every check of what was issued is made from the ledger after the persister moved the streams,
or from Redis itself, never from the engine's answers alone.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import spec_text
from faults.proxy import FaultProxy
from redis_rig import RedisRig
from servers.postgres_fixtures import fresh_postgres_url
from servers.postgres_server import PostgresServer
from servers.redis_fixtures import (  # noqa: F401  # noqa: F401
    own_redis_server,
    redis_cluster,
    redis_cluster_session,
    redis_server,
    redis_server_session,
)
from servers.redis_servers import RedisServer
from xfq.adapters.ids import RandomIds
from xfq.adapters.redis import connect, rollovers
from xfq.adapters.redis.connect import sync_client
from xfq.adapters.redis.engine import SCRIPT_CODES, RedisClaimEngine
from xfq.adapters.redis.loader import load_campaign
from xfq.adapters.redis.persister import Persister
from xfq.adapters.redis.reconcile import check_redis, repair_gaps
from xfq.adapters.redis.scripts import CLAIM_SCRIPT
from xfq.adapters.sql.link import LinkBounds
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.adapters.sql.times import to_us
from xfq.cli import app
from xfq.domain.campaign import PersonLimits
from xfq.domain.claim import ClaimCode, PersonCounts, decide_claim
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.errors import StorageUnavailable, XfqError
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.spec import parse_campaign

ANSWER_TIMEOUT_S = 30.0
CUT_BOUND_S = 30.0  # far below the minutes TCP would hold a write on a cut link
SPEC_TEXT = (
    spec_text.campaign("redis-grab", "Grab on Redis")
    + spec_text.round_(residencies=("permanent", "work"))
    + spec_text.voucher_type("r1-retail-180-40", 180, 40, 7)
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 500, per_person=3)
    + spec_text.voucher_type("r1-home-500-80", 500, 80, 400)
)
CAMPAIGN = parse_campaign(SPEC_TEXT, "redis-grab.toml")
R1 = CAMPAIGN.round("r1")
DURING = R1.opens_at + timedelta(seconds=1)
SCARCE = "r1-retail-180-40"  # 7
RETAIL_THREE_EACH = "r1-retail-30-6"  # per_person 3, but the category allows 2
HOME = "r1-home-500-80"


def person(n: int | str) -> Citizen:
    return Citizen(f"p-{n}", Residency.PERMANENT, in_city=True)


def claim_of(n: int | str, type_id: str, key: str = "k") -> ClaimRequest:
    return ClaimRequest(person(n), type_id, key)


def start(tmp_path: Path, servers: object, shards: int = 1) -> RedisRig:
    rig = RedisRig(tmp_path, CAMPAIGN, SPEC_TEXT, servers, shards)  # type: ignore[arg-type]
    rig.start()
    return rig


def ledger_counts(rig: RedisRig) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    assert rig.ledger is not None and rig.persister is not None
    rig.persister.drain()
    by_type: Counter[str] = Counter()
    by_person: Counter[tuple[str, str]] = Counter()
    for _id, type_id, person_id, _key, _state in rig.ledger.issued_claims():
        by_type[type_id] += 1
        by_person[(person_id, type_id)] += 1
    return by_type, by_person


async def grab(rig: RedisRig, requests: list[ClaimRequest]) -> list[ClaimAnswer]:
    assert rig.engine is not None
    engine = rig.engine
    return await asyncio.gather(*(engine.claim(r, DURING) for r in requests))


# --- contention ----------------------------------------------------------------------------


@pytest.mark.parametrize(("servers", "shards"), [("redis_server", 1), ("redis_cluster", 3)])
def test_many_concurrent_claims_never_oversell_nor_pass_a_limit(
    request: pytest.FixtureRequest, tmp_path: Path, servers: str, shards: int
) -> None:
    rig = start(tmp_path, request.getfixturevalue(servers), shards)
    try:
        people = range(150)
        # everyone tries the scarce type three times with different keys, and the retail type
        # that allows three four times (the category allows two)
        wave = [c for n in people for c in (
            claim_of(n, SCARCE, "a"), claim_of(n, SCARCE, "b"), claim_of(n, SCARCE, "c"),
            *(claim_of(n, RETAIL_THREE_EACH, f"r{i}") for i in range(4)),
        )]  # fmt: skip
        random.Random(7).shuffle(wave)
        answers = asyncio.run(grab(rig, wave))

        codes = Counter(a.code for a in answers)
        by_type, by_person = ledger_counts(rig)
        assert by_type[SCARCE] == 7
        assert codes[ClaimCode.ISSUED] == by_type[SCARCE] + by_type[RETAIL_THREE_EACH]
        assert max(by_person.values()) <= 2
        for n in people:
            retail = by_person[(f"p-{n}", SCARCE)] + by_person[(f"p-{n}", RETAIL_THREE_EACH)]
            assert retail <= 2, f"p-{n} holds {retail} retail vouchers"
        assert rig.engine is not None and rig.engine.remaining(SCARCE) == 0
        assert rig.ledger is not None  # and reconcile agrees, per-person counts over every shard
        checks = check_redis(rig.engine.redis, rig.engine.layout, CAMPAIGN, rig.ledger)
        assert [c.number for c in checks if not c.ok] == []
        per_person = {c.number: c for c in checks}[10]
        assert f"{len(by_person):,} person/type counts, 0 differ" in per_person.detail
    finally:
        rig.stop()


def test_concurrent_retries_of_one_key_get_one_voucher(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, redis_server)
    try:
        answers = asyncio.run(grab(rig, [claim_of(1, HOME, "same")] * 50))

        assert {a.code for a in answers} == {ClaimCode.ISSUED}
        assert len({a.voucher.id for a in answers if a.voucher}) == 1
        by_type, _ = ledger_counts(rig)
        assert by_type[HOME] == 1
    finally:
        rig.stop()


# --- the script and the domain --------------------------------------------------------------


def test_the_script_decides_as_the_domain_does_on_random_claims(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, redis_server)
    assert rig.engine is not None
    redis, layout = rig.engine.redis, rig.engine.layout
    rng = random.Random(2022)
    try:
        for case in range(300):
            opens = DURING + timedelta(seconds=rng.randint(-3, 3))
            closes = opens + timedelta(seconds=rng.randint(0, 4))
            limits = PersonLimits(1, rng.choice([None, 0, 1, 2, 3]), rng.choice([None, 1, 2, 4]))
            rnd = replace(R1, opens_at=opens, claim_closes_at=closes, limits=limits)
            vtype = replace(CAMPAIGN.voucher_type(HOME)[1], per_person=rng.randint(1, 3))
            counts = PersonCounts(rng.randint(0, 3), rng.randint(0, 3), rng.randint(0, 4))
            remaining = rng.randint(0, 2)
            who = Citizen(f"c-{case}", rng.choice([Residency.PERMANENT, Residency.VISIT]), True)
            now = DURING + timedelta(seconds=rng.randint(-4, 6))
            redis.hset(layout.round(0, "r1"), mapping={
                "opens": to_us(opens), "closes": to_us(closes),
                "per_category": -1 if limits.per_category is None else limits.per_category,
                "per_round": -1 if limits.per_round is None else limits.per_round,
            })  # fmt: skip
            redis.hset(layout.voucher_type(0, HOME), "per_person", vtype.per_person)
            redis.hset(layout.person(0, who.person_id), mapping={
                f"t:{HOME}": counts.of_type, "c:r1:home": counts.of_category,
                "r:r1": counts.of_round,
            })  # fmt: skip
            redis.set(layout.stock(0, HOME), remaining)

            eligible = "1" if rnd.eligibility.refusal(who) is None else "0"
            claims = [[str(to_us(now)), who.person_id, "k", HOME, eligible, f"v-{case}", "0", "0"]]
            answer = connect.run(
                redis, CLAIM_SCRIPT, layout.stream(0), layout.tag(0), json.dumps(claims)
            )[0]

            expected = decide_claim(rnd, vtype, who, now, remaining, counts)
            assert SCRIPT_CODES[answer[0]] is expected.code, (case, rnd, counts, remaining, now)
    finally:
        rig.stop()


# --- durability ------------------------------------------------------------------------------


def test_every_issued_answer_survives_a_kill_of_redis_and_of_the_persister(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, own_redis_server)
    try:
        wave = [claim_of(n, HOME) for n in range(300)]
        answers = asyncio.run(grab(rig, wave))
        issued = {a.voucher.id for a in answers if a.voucher is not None}
        assert len(issued) == 300
        # the persister took a batch and died before its ledger commit
        assert rig.engine is not None and rig.ledger is not None
        stream = rig.engine.layout.stream(0)
        client = sync_client(own_redis_server.url, cluster=False)
        client.xgroup_create(stream, "persisters", id="0")
        assert client.xreadgroup("persisters", "persister", {stream: ">"}, 100)
        client.close()

        own_redis_server.kill()
        own_redis_server.start()

        redis = sync_client(own_redis_server.url, cluster=False)
        Persister(redis, rig.engine.layout, CAMPAIGN, rig.ledger).drain()
        stored = {row[0] for row in rig.ledger.issued_claims()}
        assert stored == issued
        # the engine works on after Redis came back, and remembers what it issued
        again = asyncio.run(grab(rig, [claim_of(0, HOME), claim_of("new", HOME)]))
        assert [a.code for a in again] == [ClaimCode.ISSUED, ClaimCode.ISSUED]
        assert again[0].voucher == answers[0].voucher
    finally:
        rig.stop()


def test_another_persister_takes_over_what_a_dead_one_had_taken(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, redis_server, shards=2)
    try:
        answers = asyncio.run(grab(rig, [claim_of(n, HOME) for n in range(40)]))
        assert rig.engine is not None and rig.ledger is not None
        layout, redis = rig.engine.layout, rig.engine.redis
        dead = Persister(redis, layout, CAMPAIGN, rig.ledger, consumer="dead")
        dead._prepare()
        for shard in range(layout.shards):  # it read everything, then died before its commit
            assert redis.xreadgroup("persisters", "dead", {layout.stream(shard): ">"}, 100)

        Persister(redis, layout, CAMPAIGN, rig.ledger, consumer="heir", stale_ms=0).drain()

        stored = {row[0] for row in rig.ledger.issued_claims()}
        assert stored == {a.voucher.id for a in answers if a.voucher is not None}
        assert len(stored) == 40
    finally:
        rig.stop()


def test_a_running_persister_takes_over_from_one_that_died_after_it_started(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, redis_server)
    try:
        assert rig.engine is not None and rig.ledger is not None
        layout, redis = rig.engine.layout, rig.engine.redis
        heir = Persister(redis, layout, CAMPAIGN, rig.ledger, consumer="heir", stale_ms=50)
        heir.drain()  # running before the other one dies
        answers = asyncio.run(grab(rig, [claim_of(n, HOME) for n in range(30)]))
        dead = Persister(redis, layout, CAMPAIGN, rig.ledger, consumer="dead")
        dead._prepare()
        assert redis.xreadgroup("persisters", "dead", {layout.stream(0): ">"}, 100)
        time.sleep(0.1)  # longer than stale_ms: its entries are now anyone's

        heir.drain()

        stored = {row[0] for row in rig.ledger.issued_claims()}
        assert stored == {a.voucher.id for a in answers if a.voucher is not None}
    finally:
        rig.stop()


def test_a_running_persister_rides_out_a_redis_restart(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, own_redis_server)
    assert rig.engine is not None and rig.ledger is not None and rig.persister is not None
    stop = threading.Event()
    running = threading.Thread(target=rig.persister.run, args=(stop, 100))
    running.start()
    try:
        before = asyncio.run(grab(rig, [claim_of(n, HOME) for n in range(20)]))
        own_redis_server.kill()
        time.sleep(0.3)  # the persister meets a closed connection
        own_redis_server.start()
        after = asyncio.run(grab(rig, [claim_of(n, HOME) for n in range(20, 40)]))

        issued = {a.voucher.id for a in before + after if a.voucher is not None}
        assert len(issued) == 40
        ledger = rig.ledger
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while {r[0] for r in ledger.issued_claims()} != issued and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {r[0] for r in ledger.issued_claims()} == issued
    finally:
        stop.set()
        running.join(ANSWER_TIMEOUT_S)
        rig.stop()


def test_a_persister_cut_off_from_its_ledger_gives_up_in_time_and_moves_everything_after(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    postgres_server: PostgresServer,
) -> None:
    proxy = FaultProxy(postgres_server.port)
    proxy.start()
    url = fresh_postgres_url(postgres_server).replace(
        f":{postgres_server.port}/", f":{proxy.port}/"
    )
    rig = RedisRig(
        tmp_path, CAMPAIGN, SPEC_TEXT, redis_server, 1, url, LinkBounds(answer_timeout_s=5)
    )
    rig.start()
    assert rig.ledger is not None and rig.persister is not None
    try:
        answers = asyncio.run(grab(rig, [claim_of(n, HOME) for n in range(20)]))
        issued = {a.voucher.id for a in answers if a.voucher is not None}
        proxy.set("blackhole")  # the ledger's connections stall, new ones hang
        try:
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                rig.persister.step()
            assert time.monotonic() - started < CUT_BOUND_S
        finally:
            proxy.set("pass")
        rig.persister.drain()  # the same persister, healed
        assert {r[0] for r in rig.ledger.issued_claims()} == issued
    finally:
        rig.stop()
        proxy.close()


def test_a_sold_out_type_is_answered_without_redis(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, own_redis_server, shards=2)
    try:
        answers = asyncio.run(grab(rig, [claim_of(n, SCARCE) for n in range(12)]))
        assert Counter(a.code for a in answers)[ClaimCode.ISSUED] == 7
        winner = next(n for n, a in enumerate(answers) if a.code is ClaimCode.ISSUED)
        assert rig.engine is not None
        assert rig.engine.wait_sold_out(SCARCE, ANSWER_TIMEOUT_S)

        own_redis_server.kill()

        late = asyncio.run(grab(rig, [claim_of("late", SCARCE), claim_of(winner, SCARCE)]))
        assert late[0].code is ClaimCode.SOLD_OUT
        assert late[1].code is ClaimCode.ISSUED  # a retry still gets its voucher
        assert late[1].voucher == answers[winner].voucher
        with pytest.raises(XfqError):  # a type not sold out needs Redis
            asyncio.run(grab(rig, [claim_of("late", HOME)]))
    finally:
        rig.stop()


BEFORE = R1.opens_at - timedelta(minutes=1)


def _learns_not_open(engine: RedisClaimEngine, type_id: str) -> bool:
    """Ask until the engine answers `type_id` at BEFORE from memory (its first answers ask
    Redis while it reads the openings)."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = engine.claim_sync(claim_of("early", type_id), BEFORE)
        assert answer.code is ClaimCode.NOT_OPEN, answer
        if engine.answers_from_memory(type_id, BEFORE):
            return True
        time.sleep(0.01)
    return False


def test_a_round_not_yet_open_is_answered_without_redis(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, own_redis_server)
    try:
        assert rig.engine is not None
        assert _learns_not_open(rig.engine, SCARCE)

        own_redis_server.kill()

        early = asyncio.run(
            asyncio.wait_for(rig.engine.claim(claim_of("eager", HOME, "k2"), BEFORE), 5)
        )
        assert early.code is ClaimCode.NOT_OPEN
        assert R1.opens_at.isoformat() in early.reason  # as Redis's answer words it
        with pytest.raises(XfqError):  # at the opening the claim needs Redis
            asyncio.run(grab(rig, [claim_of("eager", HOME, "k3")]))
    finally:
        rig.stop()


def test_a_round_an_operator_opens_early_elsewhere_is_claimable_here_within_seconds(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, redis_server)
    elsewhere = RedisClaimEngine(CAMPAIGN, rig.url, RandomIds())
    try:
        assert rig.engine is not None
        here = rig.engine
        assert _learns_not_open(here, HOME)

        elsewhere.replace_campaign(CAMPAIGN.with_claim_window("r1", BEFORE, R1.claim_closes_at))

        waited, answers = time.monotonic(), list[ClaimAnswer]()
        while time.monotonic() - waited < ANSWER_TIMEOUT_S:
            answers.append(here.claim_sync(claim_of(len(answers), HOME), BEFORE))
            if answers[-1].code is ClaimCode.ISSUED:
                break
            time.sleep(0.05)
        assert answers[-1].code is ClaimCode.ISSUED
        assert {a.code for a in answers[:-1]} <= {ClaimCode.NOT_OPEN}
        by_type, _ = ledger_counts(rig)
        assert by_type[HOME] == 1  # the voucher it answered is the one Redis recorded
    finally:
        elsewhere.close()
        rig.stop()


@pytest.mark.parametrize(("servers", "shards"), [("redis_server", 2), ("redis_cluster", 3)])
def test_stock_added_by_a_rollover_is_claimable_after_a_sell_out_and_reconciles(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    servers: str,
    shards: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = start(tmp_path, request.getfixturevalue(servers), shards)
    try:
        first = asyncio.run(grab(rig, [claim_of(n, SCARCE) for n in range(9)]))
        assert Counter(a.code for a in first)[ClaimCode.ISSUED] == 7
        assert rig.engine is not None and rig.ledger is not None
        assert rig.engine.wait_sold_out(SCARCE, ANSWER_TIMEOUT_S)
        _record_rollover(rig, SCARCE, 2)  # as the rollover service does: ledger first
        moves = SqlRolloverStore(rig.ledger.engine).moves()
        assert rig.engine.top_up(moves) == 2
        assert rig.engine.remaining(SCARCE) == 2
        assert rig.engine.top_up(moves) == 0  # given again (a retry): nothing more
        # A retry that read Redis before another process's top-up, or whose first answer was
        # lost: the script itself adds nothing the second time.
        monkeypatch.setattr(rollovers, "missing", lambda _r, _l, ms: list(ms))
        assert rig.engine.top_up(moves) == 0
        monkeypatch.undo()
        load_campaign(rig.engine.redis, CAMPAIGN, rig.ledger, shards)  # as an engine start does
        assert rig.engine.remaining(SCARCE) == 2
        more = asyncio.run(grab(rig, [claim_of(f"new-{n}", SCARCE) for n in range(3)]))
        assert [a.code for a in more].count(ClaimCode.ISSUED) == 2
        by_type, _ = ledger_counts(rig)
        assert by_type[SCARCE] == 9
        checks = check_redis(rig.engine.redis, rig.engine.layout, CAMPAIGN, rig.ledger)
        assert all(c.ok for c in checks), checks
    finally:
        rig.stop()


def _record_rollover(rig: RedisRig, type_id: str, added: int) -> None:
    from xfq.adapters.sql import tables

    assert rig.ledger is not None
    row = {
        "from_round": "r0", "from_type_id": f"r0-{type_id}", "into_round": "r1",
        "into_type_id": type_id, "unclaimed": added, "expired": 0, "value_fen": added * 40_00,
        "added_count": added, "remainder_fen": 0, "at_us": to_us(DURING),
    }  # fmt: skip
    with rig.ledger.engine.begin() as c:
        c.execute(tables.rollovers.insert().values(**row))


# --- reconcile ---------------------------------------------------------------------------------


def test_reconcile_finds_claims_not_yet_persisted_and_repairs_them(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, redis_server, shards=2)
    try:
        asyncio.run(grab(rig, [claim_of(n, SCARCE) for n in range(10)]))
        cli = ["reconcile", str(tmp_path / "ledger.db"), "--redis", redis_server.url]

        found = CliRunner().invoke(app, cli)
        assert found.exit_code == 1, found.output
        assert "every claim Redis" in found.output

        repaired = CliRunner().invoke(app, [*cli, "--repair"])
        assert repaired.exit_code == 0, repaired.output
        assert "7 voucher(s) moved" in repaired.output
        by_type, _ = ledger_counts(rig)
        assert by_type[SCARCE] == 7
    finally:
        rig.stop()


def test_reconcile_finds_a_person_count_that_differs(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    rig = start(tmp_path, redis_server)
    try:
        asyncio.run(grab(rig, [claim_of(n, HOME) for n in range(3)]))
        assert rig.engine is not None and rig.ledger is not None
        redis, layout = rig.engine.redis, rig.engine.layout
        repair_gaps(redis, layout, CAMPAIGN, rig.ledger)
        assert all(c.ok for c in check_redis(redis, layout, CAMPAIGN, rig.ledger))

        redis.hincrby(layout.person(0, "p-1"), f"t:{HOME}", 1)

        checks = {c.number: c for c in check_redis(redis, layout, CAMPAIGN, rig.ledger)}
        assert not checks[10].ok
        assert "1 differ" in checks[10].detail
    finally:
        rig.stop()


def test_a_campaign_with_rules_the_redis_engine_lacks_is_refused_with_what_they_are(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    from xfq.bootstrap import build
    from xfq.config import Settings

    spec = tmp_path / "households.toml"
    spec.write_text(
        SPEC_TEXT.replace("per_round = 3", "per_round = 3\nper_household = 3"), encoding="utf-8"
    )
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'l.db'}", spec_path=spec, redis_url=redis_server.url
    )
    with pytest.raises(XfqError, match=r"does not enforce household cap \(round r1\)"):
        build(settings)


def test_a_round_with_a_waiting_room_is_refused_on_redis(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    from xfq.bootstrap import build
    from xfq.config import Settings

    spec = tmp_path / "room.toml"
    room = "\n[rounds.waiting_room]\nopens_before_minutes = 10\nadmit_per_second = 100\n"
    text = SPEC_TEXT.replace("\n[[rounds.types]]", room + "\n[[rounds.types]]", 1)
    spec.write_text(text, encoding="utf-8")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'l.db'}", spec_path=spec, redis_url=redis_server.url
    )
    with pytest.raises(XfqError, match=r"does not enforce waiting room \(round r1\)"):
        build(settings)
