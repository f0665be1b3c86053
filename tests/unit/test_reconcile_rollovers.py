"""Recomputing a recorded rollover: refunds lapsed after it are tolerated, exactly that many."""

from __future__ import annotations

import spec_text
from xfq.domain.rollover import RolloverMove
from xfq.services.reconcile_rollovers import RecordedMove, audit_rollovers
from xfq.spec import parse_campaign

CAMPAIGN = parse_campaign(
    spec_text.campaign("weekly", "Week by week", ("retail",)).replace(
        "enabled = false\nsources = []", 'enabled = true\nsources = ["unclaimed", "expired"]'
    )
    + spec_text.round_("r1", 1, "2022-02-26T10:00:00", "2022-03-05T00:00:00")
    + spec_text.voucher_type("r1-retail-180-40", 180, 40, 5)
    + spec_text.round_("r2", 2, "2022-03-05T10:00:00", "2022-03-12T00:00:00")
    + spec_text.voucher_type("r2-retail-180-40", 180, 40, 2),
    "weekly.toml",
)
# At the rollover: 4 of 5 issued, 2 redeemed, 2 expired; 1 unclaimed -> 3 vouchers of r2.
RECORDED = RolloverMove("r1", "r1-retail-180-40", "r2", "r2-retail-180-40", 1, 2, 120_00, 3, 0)


def audit(redeemed_now: int, lapsed_since: int) -> list[str]:
    recorded = [RecordedMove(RECORDED, lapsed_since)]
    held = {"r1-retail-180-40": (4, redeemed_now)}  # issued, redeemed
    return audit_rollovers(CAMPAIGN, recorded, held, {}).mismatches


def test_the_ledger_as_the_rollover_saw_it_matches() -> None:
    assert audit(redeemed_now=2, lapsed_since=0) == []


def test_vouchers_lapsed_since_the_rollover_are_tolerated_up_to_their_number() -> None:
    assert audit(redeemed_now=1, lapsed_since=1) == []
    assert audit(redeemed_now=0, lapsed_since=2) == []
    assert audit(redeemed_now=0, lapsed_since=1) == [  # one more unused than lapsed
        "round r1 r1-retail-180-40: expired recorded 2, found 3; value recorded 120.00, found "
        "160.00; added recorded 3, found 4 -> 40.00 yuan under-rolled, 40.00 yuan under-issued "
        "as vouchers"
    ]


def test_fewer_unused_than_recorded_is_over_rolled_whatever_lapsed() -> None:
    assert audit(redeemed_now=3, lapsed_since=1) == [
        "round r1 r1-retail-180-40: expired recorded 2, found 1; value recorded 120.00, found "
        "80.00; added recorded 3, found 2 -> 40.00 yuan over-rolled, 40.00 yuan over-issued as "
        "vouchers"
    ]
