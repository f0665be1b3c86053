"""What only a PostgreSQL ledger can go through: its server restarting or crashing under a running
engine, its link cut off, other processes writing the same keys, serialization failures.

The restart tests run their own cluster, so stopping it disturbs no other test.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from faults.proxy import FaultProxy, running, through
from servers.postgres_fixtures import LedgerDb, fresh_postgres_url
from servers.postgres_server import PostgresServer
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.errors import StorageConflict, translate
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.link import LinkBounds
from xfq.adapters.sql.schema import create_engine, migrate
from xfq.bootstrap import build
from xfq.config import Settings
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.errors import StorageUnavailable
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.services.grab import submit_claim
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
CAMPAIGN = load_campaign(EXAMPLE)
R6 = CAMPAIGN.round("r6")
DURING = R6.opens_at + timedelta(seconds=1)
TYPE = "r6-home-2000-300"  # 1,980 of them
ANSWER_TIMEOUT_S = 30.0
SERVING = LinkBounds(answer_timeout_s=5.0)  # the serving processes' defaults (config.py)
# Far below the minutes a cut-off link used to hold a caller (TCP's retransmissions), far above
# the bounds: a loaded machine must not make the test fail.
CUT_BOUND_S = 30.0


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A cluster only these tests use: they stop, crash and restart it."""
    with PostgresServer() as server:
        server.execute("CREATE DATABASE xfq_template")
        engine = create_engine(server.url("xfq_template"))
        migrate(engine)
        engine.dispose()
        yield server


@pytest.fixture
def own_url(own_server: PostgresServer) -> str:
    if own_server.process is None:  # a test that failed halfway may have left it stopped
        own_server.start()
    return fresh_postgres_url(own_server)


def claim(engine: EmbeddedClaimEngine, person: str, key: str | None = None) -> Future[ClaimAnswer]:
    citizen = Citizen(person, Residency.PERMANENT, in_city=True)
    request = ClaimRequest(citizen, TYPE, key or f"{person}-k")
    return submit_claim(engine, SimulatedClock(DURING), request)


def open_city(url: str, bounds: LinkBounds | None = None) -> tuple[SqlLedger, EmbeddedClaimEngine]:
    ledger = SqlLedger(url, bounds=bounds)
    ledger.install_campaign(CAMPAIGN, EXAMPLE.read_text(), R6.opens_at)
    return ledger, EmbeddedClaimEngine(CAMPAIGN, ledger, RandomIds(), None)


def issued_ids(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM vouchers")}


def test_while_postgresql_restarts_claims_fail_cleanly_and_succeed_afterwards(
    own_server: PostgresServer, own_url: str
) -> None:
    ledger, engine = open_city(own_url)
    try:
        before = claim(engine, "alice").result(ANSWER_TIMEOUT_S)
        assert before.code is ClaimCode.ISSUED and before.voucher is not None
        assert ledger.reader().voucher(before.voucher.id) is not None

        own_server.stop()
        with pytest.raises(StorageUnavailable):
            claim(engine, "bob").result(ANSWER_TIMEOUT_S)
        with pytest.raises(StorageUnavailable):
            ledger.reader().vouchers_of("alice")
        with pytest.raises(StorageUnavailable):
            ledger.enroll_merchant("shop", "Shop", "retail", DURING)
        assert engine.remaining(TYPE) == 1_979  # bob's refused claim took nothing

        own_server.start()
        after = claim(engine, "bob").result(ANSWER_TIMEOUT_S)
        assert after.code is ClaimCode.ISSUED and after.voucher is not None
        assert [v.id for v in ledger.reader().vouchers_of("alice")] == [before.voucher.id]
        ledger.enroll_merchant("shop", "Shop", "retail", DURING)
        assert issued_ids(own_url) == {before.voucher.id, after.voucher.id}
    finally:
        engine.close()
        ledger.close()


def test_after_postgresql_is_killed_mid_grab_every_issued_answer_is_in_the_ledger(
    own_server: PostgresServer, own_url: str
) -> None:
    ledger, engine = open_city(own_url)
    answered: list[str] = []
    failed = 0
    other: list[object] = []  # anything else than issued or storage_unavailable
    lock = threading.Lock()

    def reply(future: Future[ClaimAnswer]) -> None:
        nonlocal failed
        with lock:
            error = future.exception()
            if error is None and (voucher := future.result().voucher) is not None:
                answered.append(voucher.id)
            elif isinstance(error, StorageUnavailable):
                failed += 1
            else:
                other.append(error or future.result())

    try:
        futures = []

        def send(people: range) -> None:
            for n in people:
                future = claim(engine, f"p-{n}")
                future.add_done_callback(reply)
                futures.append(future)

        send(range(300))
        for future in futures:
            assert future.result(ANSWER_TIMEOUT_S).code is ClaimCode.ISSUED
        send(range(300, 600))  # in flight: some committed, some not, when the server dies
        own_server.stop(kill=True)  # SIGKILL to the postmaster and its backends
        send(range(600, 900))  # while it is down
        for future in futures:
            future.exception(ANSWER_TIMEOUT_S)  # every claim gets an answer
        assert len(answered) >= 300 and failed >= 300 and other == []
        own_server.start()
        assert set(answered) <= issued_ids(own_url)  # durable: nothing answered was lost
        retried = claim(engine, "p-899", key="retry").result(ANSWER_TIMEOUT_S)
        assert retried.code is ClaimCode.ISSUED  # the refused claim used up no limit
    finally:
        engine.close()
        ledger.close()
    # A restarted engine counts what the ledger holds, including claims committed but not yet
    # answered when the server died.
    ledger, engine = open_city(own_url)
    try:
        assert engine.remaining(TYPE) == 1_980 - len(issued_ids(own_url))
    finally:
        engine.close()
        ledger.close()


@pytest.fixture
def proxy(own_server: PostgresServer) -> Iterator[FaultProxy]:
    with running(own_server.port) as made:
        yield made


def test_while_the_link_is_cut_claims_and_reads_fail_within_the_bound_then_succeed(
    own_url: str, proxy: FaultProxy
) -> None:
    ledger, engine = open_city(through(proxy, own_url), SERVING)
    try:
        before = claim(engine, "alice").result(ANSWER_TIMEOUT_S)
        assert before.voucher is not None
        ledger.reader().vouchers_of("alice")  # this thread's reading connection is open

        proxy.set("blackhole")  # open connections stall, new ones hang
        try:
            for call in (
                lambda: claim(engine, "bob").result(CUT_BOUND_S),  # a ledger write
                lambda: ledger.reader().vouchers_of("alice"),  # on its open connection
                lambda: ledger.reader().vouchers_of("alice"),  # on a new one
            ):
                started = time.monotonic()
                with pytest.raises(StorageUnavailable):
                    call()
                assert time.monotonic() - started < CUT_BOUND_S
            assert engine.remaining(TYPE) == 1_979  # bob's refused claim took nothing
        finally:
            proxy.set("pass")

        after = claim(engine, "bob").result(ANSWER_TIMEOUT_S)  # the same key, healed
        assert after.code is ClaimCode.ISSUED and after.voucher is not None
        assert [v.id for v in ledger.reader().vouchers_of("alice")] == [before.voucher.id]
        assert issued_ids(own_url) == {before.voucher.id, after.voucher.id}
    finally:
        engine.close()
        ledger.close()


def test_the_ledger_connections_carry_the_kernel_bounds_for_a_real_partition(
    postgres_url: str,
) -> None:
    # A real partition leaves sent data and keepalive probes unacknowledged, which the kernel
    # bounds (the proxy above cannot show it: its own kernel acknowledges everything).
    ledger = SqlLedger(postgres_url, bounds=SERVING)
    try:
        connection = ledger.engine.raw_connection()
        fd = connection.driver_connection.pgconn.socket  # type: ignore[union-attr]
        with socket.socket(fileno=socket.dup(fd)) as sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 5000
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
        connection.close()
    finally:
        ledger.close()


def voucher(voucher_id: str, person: str) -> Voucher:
    return Voucher(
        voucher_id, TYPE, "r6", "home", person, VoucherState.ISSUED, DURING, DURING, DURING
    )


def test_two_processes_writing_the_same_key_get_a_conflict_not_a_driver_error(
    ledger_db: LedgerDb,
) -> None:
    first, second = SqlLedger(ledger_db.url), SqlLedger(ledger_db.url)
    try:
        first.install_campaign(CAMPAIGN, EXAMPLE.read_text(), R6.opens_at)
        first.enroll_merchant("shop", "Shop", "retail", DURING)
        with pytest.raises(StorageConflict):
            second.enroll_merchant("shop", "Another shop", "retail", DURING)
        first.write(lambda tx: tx.insert_voucher(voucher("v1", "alice"), "k")).result(10)
        twice = second.write(lambda tx: tx.insert_voucher(voucher("v2", "alice"), "k"))
        with pytest.raises(StorageConflict, match="another write got there first"):
            twice.result(10)
        assert second.write(lambda tx: tx.voucher("v1")).result(10) is not None  # writer lives
    finally:
        first.close()
        second.close()


def test_a_serialization_failure_means_try_again(postgres_url: str) -> None:
    url = postgres_url
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE stock (id int PRIMARY KEY, n int)")
        setup.execute("INSERT INTO stock VALUES (1, 10)")
    with psycopg.connect(url) as a, psycopg.connect(url) as b:
        for c in (a, b):
            c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            c.execute("SELECT n FROM stock WHERE id = 1")
        a.execute("UPDATE stock SET n = n - 1 WHERE id = 1")
        a.commit()
        with pytest.raises(psycopg.errors.SerializationFailure) as caught:
            b.execute("UPDATE stock SET n = n - 1 WHERE id = 1")
    assert isinstance(translate(caught.value), StorageUnavailable)


def test_only_one_process_runs_the_embedded_engine_on_a_postgresql_ledger(
    postgres_url: str,
) -> None:
    settings = Settings(database_url=postgres_url, spec_path=EXAMPLE)
    first = build(settings)
    try:
        with pytest.raises(Exception, match="already running in another process"):
            build(settings)
    finally:
        first.close()
    build(settings).close()  # free again once the first has stopped
