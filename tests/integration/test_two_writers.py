"""Two API processes on one PostgreSQL ledger: each has its own ledger writer, and each read
that a write depends on must still hold when the write commits (READ COMMITTED).

Each test races two `SqlLedger`s on one database, as two worker processes would, and checks
the invariant from the ledger afterwards. (Redemptions and refunds: test_checkout_services.py.)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa

import spec_text
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.audit import iter_entries
from xfq.adapters.sql.fraud import store_flags
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.adapters.sql.settlement import SqlSettlementStore
from xfq.domain.audit import verify_chain
from xfq.domain.checkout import CheckoutCode, Order
from xfq.domain.fraud import Flag, FlagStatus, Rule
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import LedgerTx
from xfq.services import operations
from xfq.services.checkout import RedeemRequest, submit_redeem
from xfq.services.expiry import expire
from xfq.services.fraud import FlagAlreadyReviewed, Review, review_unit
from xfq.services.rollover import roll_over
from xfq.services.settlement import close_day
from xfq.spec import load_campaign, parse_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"

T = TypeVar("T")
AT = datetime(2022, 3, 4, 9, 0, tzinfo=UTC)
RACES = 100  # per writer
ISSUED = VoucherState.ISSUED


@pytest.fixture
def writers(postgres_url: str) -> Iterator[tuple[SqlLedger, SqlLedger]]:
    """Two ledgers on one PostgreSQL database: two API processes' writers."""
    first, second = SqlLedger(postgres_url), SqlLedger(postgres_url)
    yield first, second
    first.close()
    second.close()


def at_once(work: Callable[[int], T]) -> list[T]:
    """`work(0)` and `work(1)` on two threads at once; their results (errors raise)."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(work, range(2)))


def insert(claims: list[tuple[Voucher, str]], tx: LedgerTx) -> int:
    return tx.insert_new_vouchers(claims)


def count(ledger: SqlLedger, sql: str) -> int:
    with ledger.engine.connect() as c:
        return int(c.execute(sa.text(sql)).scalar_one())


def audit_chain(ledger: SqlLedger) -> list[str]:
    entries = list(iter_entries(ledger.engine))
    assert verify_chain(entries) is None
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    return [e.action for e in entries]


def status_changes(ledger: SqlLedger, merchant_id: str) -> list[tuple[str, str]]:
    """(from, to) of each audited status change of a merchant, in the chain's order."""
    return [
        (json.loads(e.details_json)["from"], json.loads(e.details_json)["to"])
        for e in iter_entries(ledger.engine)
        if e.subject == merchant_id and e.action != "merchant.enrolled"
    ]


def enroll(ledger: SqlLedger, merchants: list[str]) -> None:
    for m in merchants:
        ledger.enroll_merchant(m, m, "retail", AT, status="pending")


def test_operators_on_two_api_processes_append_one_unbroken_audit_chain(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """Without the chain's lock both appends read the same last entry: one fails (409)."""

    def operator(m: int) -> None:
        for n in range(RACES):
            opens = AT + timedelta(minutes=n)
            action = ("open", "cancel")[m]
            operations.record_window(writers[m], f"op{m}", "r1", opens, opens, action, AT).result()

    at_once(operator)
    actions = audit_chain(writers[0])
    assert actions.count("round.opened") == actions.count("round.cancelled") == RACES


def test_closing_days_while_another_process_audits_answers_every_closing(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """A closing whose audit append collided was taken for "closed meanwhile": a 500."""
    campaign = load_campaign(EXAMPLE)
    store = SqlSettlementStore(writers[0].engine, campaign.tz)
    now = datetime(2023, 1, 1, tzinfo=UTC)

    def work(m: int) -> None:
        for n in range(RACES):
            if m == 0:
                day = date(2022, 1, 1) + timedelta(days=n)
                assert close_day(store, campaign, day, now, "finance").newly_closed
            else:
                operations.record_window(writers[1], "op", "r1", AT, AT, "open", AT).result()

    at_once(work)
    actions = audit_chain(writers[0])
    assert actions.count("settlement.closed") == actions.count("round.opened") == RACES
    assert count(writers[0], "SELECT count(*) FROM settlement_days") == RACES


def test_two_api_processes_expiring_at_once_expire_each_voucher_once(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """Both read the due vouchers before either committed: each wrote their expire events."""
    campaign = load_campaign(EXAMPLE)
    writers[0].install_campaign(campaign, EXAMPLE.read_text(), AT)
    rnd = campaign.rounds[0]
    t, until = rnd.types[0], AT + timedelta(days=1)
    expired = 0
    for w in range(20):
        claims = [
            (Voucher(f"v{w}-{n}", t.id, rnd.id, t.category, f"p{n}", ISSUED, AT, AT, until), f"{w}")
            for n in range(200)
        ]
        writers[0].write(functools.partial(insert, claims)).result()
        expired += sum(at_once(lambda m: expire(writers[m], until).result()))
    assert expired == 20 * 200
    events = "SELECT count(*) FROM voucher_events WHERE event = 'expire'"
    assert count(writers[0], events) == expired


def test_fraud_scans_on_two_api_processes_store_each_flag_once(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """Both found a flag new and inserted it: the second scan failed on its key (a 500)."""

    def scan(wave: int, m: int) -> int:
        flags = [
            Flag(Rule.REPEAT_PAIR, f"m{wave}", f"p{n}", ("rd1",), {"n": n}, "same payer")
            for n in range(RACES)
        ]
        return store_flags(writers[m].engine, flags, AT)

    for wave in range(5):
        assert sum(at_once(functools.partial(scan, wave))) == RACES
    assert count(writers[0], "SELECT count(*) FROM fraud_flags") == 5 * RACES


def test_status_changes_on_two_api_processes_audit_the_status_each_changed_from(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """An approval and a suspension at once: the later read the merchant before the earlier
    committed, and its audit entry said "from pending" though it changed an enrolled one."""
    merchants = [f"m{n}" for n in range(RACES)]
    enroll(writers[0], merchants)

    def operator(m: int) -> None:
        status = ("enrolled", "suspended")[m]
        changes = [
            operations.set_merchant_status(writers[m], "op", x, status, AT) for x in merchants
        ]
        for change in changes:
            change.result()

    at_once(operator)
    audit_chain(writers[0])
    statuses = {x.id: x.status for x in writers[0].merchants()}
    for merchant in merchants:
        (_, first), (second, last) = status_changes(writers[0], merchant)
        assert second == first
        assert statuses[merchant] == last


def test_one_flag_reviewed_at_two_api_processes_at_once_is_reviewed_once(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """The loser is told what the winner decided (it read the flag open before the winner
    committed: "was open already")."""
    merchants = [f"m{n}" for n in range(RACES)]
    enroll(writers[0], merchants)
    flags = [Flag(Rule.REPEAT_PAIR, x, "p", (), {}, "same payer") for x in merchants]
    store_flags(writers[0].engine, flags, AT)

    def reviewer(m: int) -> list[str]:
        decision = (FlagStatus.CONFIRMED, FlagStatus.DISMISSED)[m]
        reviews = [
            Review(flag.id, decision, f"op{m}", "looked into it", suspend_merchant=m == 0)
            for flag in flags
        ]
        answers = []
        for future in [writers[m].write(review_unit(r, AT)) for r in reviews]:
            try:
                answers.append(future.result().status.value)
            except FlagAlreadyReviewed as refused:
                answers.append(str(refused))
        return answers

    for flag, *answers in zip(flags, *at_once(reviewer), strict=True):
        won = [a for a in answers if a in ("confirmed", "dismissed")]
        assert len(won) == 1
        assert f"fraud flag {flag.id} was {won[0]} already" in answers
    actions = audit_chain(writers[0])
    confirmed = actions.count("flag.confirmed")
    assert confirmed + actions.count("flag.dismissed") == RACES
    assert actions.count("merchant.suspended") == confirmed


def test_two_api_processes_starting_on_a_fresh_ledger_both_install_the_campaign(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """Both found no campaign and inserted it: the second worker failed to start."""
    campaign, text = load_campaign(EXAMPLE), EXAMPLE.read_text()
    for _ in range(10):
        with writers[0].engine.begin() as c:
            c.execute(sa.text("DELETE FROM voucher_types"))
            c.execute(sa.text("DELETE FROM campaigns"))
        at_once(lambda m: writers[m].install_campaign(campaign, text, AT))
        assert writers[1].campaign_spec() == text
        types = count(writers[0], "SELECT count(*) FROM voucher_types")
        assert types == sum(len(r.types) for r in campaign.rounds)


def test_two_vouchers_for_one_order_at_two_api_processes_redeem_one(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """Each till read the order as having no voucher yet, and both redeemed."""
    campaign = load_campaign(EXAMPLE)
    writers[0].install_campaign(campaign, EXAMPLE.read_text(), AT)
    writers[0].enroll_merchant("shop", "Shop", "retail", AT)
    rnd, t = campaign.voucher_type("r6-retail-30-6")
    valid = (rnd.opens_at, rnd.opens_at, rnd.opens_at + timedelta(days=7))
    claims = [
        (Voucher(f"v{n}-{m}", t.id, rnd.id, t.category, f"p{n}", ISSUED, *valid), f"k{m}")
        for n in range(2 * RACES)
        for m in range(2)
    ]
    writers[0].write(functools.partial(insert, claims)).result()
    now, ids = rnd.opens_at + timedelta(hours=1), RandomIds()

    def till(m: int) -> list[CheckoutCode]:
        requests = [
            RedeemRequest("shop", f"p{n}", f"v{n}-{m}", f"o{n}", Order(5000, 0), f"r{n}-{m}")
            for n in range(2 * RACES)
        ]
        sent = [submit_redeem(writers[m], campaign, ids, now, r) for r in requests]
        return [future.result().code for future in sent]

    for codes in zip(*at_once(till), strict=True):
        assert sorted(codes) == [CheckoutCode.OK, CheckoutCode.ONE_VOUCHER_PER_ORDER]


def test_two_housekeepers_rolling_one_round_over_at_once_roll_it_over_once(
    writers: tuple[SqlLedger, SqlLedger],
) -> None:
    """Every worker's housekeeper rolls due rounds over; one of two at once records it."""
    text = (
        spec_text.campaign("weekly", "Week by week", ("retail",)).replace(
            "enabled = false\nsources = []", 'enabled = true\nsources = ["unclaimed"]'
        )
        + spec_text.round_("r1", 1, "2022-02-26T10:00:00", "2022-03-05T00:00:00")
        + spec_text.voucher_type("r1-retail-180-40", 180, 40, 3)
        + spec_text.round_("r2", 2, "2022-03-05T10:00:00", "2022-03-12T00:00:00")
        + spec_text.voucher_type("r2-retail-180-40", 180, 40, 2)
    )
    campaign = parse_campaign(text, "weekly.toml")
    writers[0].install_campaign(campaign, text, AT)
    now = datetime(2022, 3, 5, 1, tzinfo=campaign.tz)

    def housekeeper(m: int) -> bool:
        store = SqlRolloverStore(writers[m].engine)
        result = roll_over(store, writers[m], campaign, "r1", now)
        assert result.added_fen == 3 * 4000
        return result.newly_done

    for _ in range(10):
        with writers[0].engine.begin() as c:
            c.execute(sa.text("DELETE FROM rollovers"))
        assert sorted(at_once(housekeeper)) == [False, True]
    assert audit_chain(writers[0]) == ["rollover"] * 10
