"""Refunds, settlement and closing days through the services on a real SQLite ledger."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.settlement_files import statement_csv, write_day_files
from xfq.adapters.sql.audit import iter_entries
from xfq.adapters.sql.figures import gather
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.settlement import SqlSettlementStore
from xfq.domain.audit import verify_chain
from xfq.domain.campaign import Campaign
from xfq.domain.checkout import CheckoutCode, Order
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.redemption import Redemption
from xfq.domain.refund import RefundOutcome
from xfq.domain.settlement import DaySettlement, LineKind
from xfq.domain.voucher import Voucher, VoucherState
from xfq.ports import ClaimRequest
from xfq.services.checkout import RedeemRequest, submit_redeem
from xfq.services.grab import claim
from xfq.services.reconcile import reconcile
from xfq.services.refund import RefundAnswer, RefundRequest, submit_refund
from xfq.services.settlement import DayNotOver, close_day, day_settlement, settlement_total_fen
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
TZ = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2022, 3, day, hour, minute, second, tzinfo=TZ)


def march(day: int) -> date:
    return date(2022, 3, day)


@dataclass
class City:
    campaign: Campaign
    ledger: SqlLedger
    engine: EmbeddedClaimEngine
    clock: SimulatedClock
    store: SqlSettlementStore
    ids: RandomIds

    def grab(self, person: str, type_id: str) -> Voucher:
        citizen = Citizen(person, Residency.PERMANENT, in_city=True)
        answer = claim(self.engine, self.clock, ClaimRequest(citizen, type_id, f"{person}-c"))
        assert answer.code is ClaimCode.ISSUED and answer.voucher is not None
        return answer.voucher

    def buy(
        self, merchant: str, person: str, type_id: str, yuan: int, when: datetime
    ) -> Redemption:
        """`person` grabs a voucher of `type_id` and spends it on a `yuan` order at `when`."""
        self.clock.set(when)  # grabbed just then, so usable from then
        voucher = self.grab(person, type_id)
        request = RedeemRequest(
            merchant, person, voucher.id, f"o-{person}", Order(yuan * 100, 0), f"k-{person}"
        )
        answer = submit_redeem(self.ledger, self.campaign, self.ids, when, request).result()
        assert answer.code is CheckoutCode.OK and answer.redemption is not None
        return answer.redemption

    def refund(self, red: Redemption, yuan: int, when: datetime) -> RefundAnswer:
        self.clock.set(when)
        request = RefundRequest(red.merchant_id, red.id, yuan * 100, f"rf-{red.id}-{when}")
        return submit_refund(self.ledger, self.campaign, self.ids, when, request).result()

    def day(self, day: int) -> DaySettlement:
        return day_settlement(self.store, self.campaign, march(day))

    def state(self, red: Redemption) -> VoucherState:
        voucher = self.ledger.reader().voucher(red.voucher_id)
        assert voucher is not None
        return voucher.state

    def standing_discounts_fen(self) -> int:
        return sum(t.discount_fen for t in gather(self.ledger.engine).types)


@pytest.fixture
def city(tmp_path: Path) -> Iterator[City]:
    campaign = load_campaign(EXAMPLE)
    ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.install_campaign(campaign, EXAMPLE.read_text(), at(4))
    for merchant_id, category in (("shop", "retail"), ("shop2", "retail"), ("hotpot", "catering")):
        ledger.enroll_merchant(merchant_id, f"{merchant_id} name", category, at(4))
    clock = SimulatedClock(at(5, 10))
    engine = EmbeddedClaimEngine(campaign, ledger, RandomIds(), None)
    store = SqlSettlementStore(ledger.engine, campaign.tz)
    yield City(campaign, ledger, engine, clock, store, RandomIds())
    engine.close()
    ledger.close()


R180, R30, CATERING = "r6-retail-180-40", "r6-retail-30-6", "r6-catering-200-50"


def test_a_day_owes_each_merchant_the_discounts_of_its_standing_redemptions(city: City) -> None:
    city.buy("shop", "alice", R180, 200, at(7, 9))
    city.buy("shop", "bob", R30, 50, at(7, 23, 59, 59))
    city.buy("hotpot", "carol", CATERING, 260, at(7, 20))
    refunded = city.buy("shop2", "dave", R180, 190, at(7, 11))
    city.buy("shop", "erin", R30, 40, at(8, 0, 0, 0))  # the next day in Taiyuan
    assert city.refund(refunded, 190, at(7, 15)).outcome is RefundOutcome.RESTORED
    day = city.day(7)
    owed = {s.merchant_id: s.owed_fen for s in day.statements}
    assert owed == {"shop": 40_00 + 6_00, "hotpot": 50_00}  # shop2's order was refunded
    assert day.closed_at is None and day.payable_fen == day.owed_fen == 96_00
    assert city.day(8).owed_fen == 6_00
    lines = day.statement("shop").lines
    assert [(x.type_id, x.order_amount_fen, x.discount_fen) for x in lines] == [
        (R180, 200_00, 40_00),
        (R30, 50_00, 6_00),
    ]


def test_refunds_at_the_end_of_validity_in_taiyuan_adjust_the_merchants_subsidy(
    city: City,
) -> None:
    in_time = city.buy("shop", "alice", R180, 200, at(10))
    too_late = city.buy("shop", "bob", R180, 200, at(10))
    kept = city.buy("shop", "carol", R180, 250, at(10))
    assert city.day(10).owed_fen == 3 * 40_00

    assert city.refund(in_time, 200, at(11, 23, 59, 59)).outcome is RefundOutcome.RESTORED
    assert city.state(in_time) is VoucherState.ISSUED  # back in the wallet, still usable
    assert city.refund(too_late, 200, at(12, 0, 0, 0)).outcome is RefundOutcome.LAPSED
    assert city.state(too_late) is VoucherState.EXPIRED  # never restored after validity
    partial = city.refund(kept, 50, at(12, 0, 0, 0))  # 200 left: 满180 still met
    assert partial.outcome is RefundOutcome.KEPT
    assert city.state(kept) is VoucherState.REDEEMED

    # the city pays only the redemption that stands, whatever happened to the vouchers
    assert city.day(10).owed_fen == 40_00
    assert settlement_total_fen(city.store, city.campaign) == city.standing_discounts_fen()


def test_closing_a_day_freezes_it_and_a_later_reversal_goes_to_the_next_open_day(
    city: City,
) -> None:
    red = city.buy("shop", "alice", R180, 200, at(7, 10))
    city.buy("shop", "bob", R30, 50, at(9, 10))
    with pytest.raises(DayNotOver, match="2022-03-07 has not ended yet in Asia/Shanghai"):
        close_day(city.store, city.campaign, march(7), at(7, 23, 59, 59), "op")
    closing = close_day(city.store, city.campaign, march(7), at(8, 0, 0, 0), "op")
    assert closing.newly_closed and closing.settlement.owed_fen == 40_00
    assert close_day(city.store, city.campaign, march(8), at(9, 1), "op").settlement.owed_fen == 0

    city.refund(red, 200, at(9, 12))  # paid on 03-07 (closed), refunded on 03-09
    assert city.day(7).owed_fen == 40_00  # frozen: what was paid stays as paid
    day9 = city.day(9)
    assert [(x.kind, x.redemption_id, x.owed_fen) for x in day9.statement("shop").lines] == [
        (LineKind.REDEMPTION, day9.statement("shop").lines[0].redemption_id, 6_00),
        (LineKind.REVERSAL, red.id, -40_00),
    ]
    assert day9.owed_fen == 6_00 - 40_00  # the merchant owes the city this day
    again = close_day(city.store, city.campaign, march(7), at(10), "someone else")
    assert not again.newly_closed and again.settlement == closing.settlement
    assert settlement_total_fen(city.store, city.campaign) == city.standing_discounts_fen()
    # Each closing is in the audit trail once, with what was owed, and the chain holds.
    entries = list(iter_entries(city.ledger.engine))
    closings = [
        (e.actor, e.subject, e.details_json) for e in entries if e.action == "settlement.closed"
    ]
    assert [(actor, day) for actor, day, _ in closings] == [
        ("op", "2022-03-07"),
        ("op", "2022-03-08"),
    ]
    assert '"owed_fen":4000' in closings[0][2]
    assert verify_chain(entries) is None


def test_a_reversal_on_a_day_closed_meanwhile_is_carried_to_the_first_open_day(
    city: City,
) -> None:
    red = city.buy("shop", "alice", R180, 200, at(7, 10))
    close_day(city.store, city.campaign, march(7), at(8, 1), "op")
    city.refund(red, 200, at(9, 12))
    close_day(city.store, city.campaign, march(9), at(10, 1), "op")  # includes the reversal
    assert city.day(9).statement("shop").reversal_fen == 40_00
    assert city.day(10).owed_fen == 0  # not clawed back twice
    assert settlement_total_fen(city.store, city.campaign) == city.standing_discounts_fen() == 0


def test_a_suspended_merchants_settlement_is_held_until_closed_and_stays_held(
    city: City,
) -> None:
    city.buy("shop", "alice", R180, 200, at(7, 10))
    city.buy("hotpot", "bob", CATERING, 200, at(7, 10))
    city.ledger.set_merchant_status("hotpot", "suspended")
    day = city.day(7)
    assert (day.owed_fen, day.payable_fen, day.held_fen) == (90_00, 40_00, 50_00)
    closed = close_day(city.store, city.campaign, march(7), at(8, 1), "op").settlement
    city.ledger.set_merchant_status("hotpot", "enrolled")
    assert city.day(7) == closed and closed.statement("hotpot").held  # as it was at closing


def test_settlement_files_are_identical_on_a_rerun_and_a_closed_day_never_changes(
    city: City, tmp_path: Path
) -> None:
    red = city.buy("shop", "alice", R180, 200, at(7, 10))
    city.buy("hotpot", "bob", CATERING, 230, at(7, 11))
    names = {m.id: m.name for m in city.ledger.merchants()}
    first = write_day_files(city.day(7), names, TZ, tmp_path / "a")
    again = write_day_files(city.day(7), names, TZ, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]

    closed = close_day(city.store, city.campaign, march(7), at(8, 1), "op").settlement
    city.refund(red, 200, at(9, 12))  # after closing: changes day 9, not day 7
    after = write_day_files(city.day(7), names, TZ, tmp_path / "c")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in after]
    assert closed.owed_fen == 90_00

    csv_text = first[0].read_text(encoding="utf-8")
    assert "2022-03-07,shop,shop name,payable,redemption," in csv_text
    assert csv_text.rstrip().splitlines()[-3].endswith("day total owed,,,,,,90.00,0.00,90.00")
    sheet = openpyxl.load_workbook(first[1])["Summary"]
    rows = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][:3] == ("merchant_id", "merchant_name", "status")
    assert ("day total owed", None, None, None, None, None, None, 90.0, None) in rows
    hotpot = statement_csv(city.day(7).statement("hotpot"), names, TZ)
    assert "shop," not in hotpot and "hotpot,hotpot name,payable,merchant total" in hotpot


def test_reconciliation_checks_settlement_against_the_ledger_to_the_fen(city: City) -> None:
    red = city.buy("shop", "alice", R180, 200, at(7, 10))
    city.buy("shop", "bob", R30, 31, at(7, 11))
    close_day(city.store, city.campaign, march(7), at(8, 1), "op")
    city.refund(red, 200, at(8, 9))
    checks = reconcile(city.campaign, gather(city.ledger.engine, campaign=city.campaign))
    balances = next(c for c in checks if c.number == 6)
    assert balances.ok, balances.detail
    assert "discounts owed 6.00 yuan; settlement over every day 6.00 yuan" in balances.detail

    with city.ledger.engine.begin() as c:  # a closed line edited behind the ledger's back
        c.exec_driver_sql("UPDATE settlement_lines SET discount_fen = discount_fen + 1")
    checks = reconcile(city.campaign, gather(city.ledger.engine, campaign=city.campaign))
    assert not next(c for c in checks if c.number == 6).ok
