"""The figures reconciliation needs, read from the ledger with plain SQL aggregates."""

from __future__ import annotations

import sqlalchemy as sa

from xfq.adapters.sql.bulk_read import driver_rows
from xfq.adapters.sql.settlement import SqlSettlementStore
from xfq.domain.campaign import Campaign
from xfq.domain.rollover import RolloverMove
from xfq.services.reconcile import LedgerFigures, TypeFigures
from xfq.services.reconcile_rollovers import RecordedMove
from xfq.services.settlement import settlement_total_fen

# Two passes over the big tables, grouped, rather than a correlated count per type and column.
_TYPES = "SELECT id, round_id, count FROM voucher_types ORDER BY round_id, id"
_VOUCHERS_BY_STATE = "SELECT type_id, state, count(*) FROM vouchers GROUP BY type_id, state"
_REDEMPTIONS_BY_STATE = """
SELECT v.type_id, r.state, count(*), coalesce(sum(r.discount_fen), 0),
       coalesce(sum(r.threshold_base_fen), 0)
FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id
GROUP BY v.type_id, r.state
"""

_PERSON_TYPE = """SELECT person_id, type_id, count(*) FROM vouchers
GROUP BY person_id, type_id HAVING count(*) > 1"""
_PERSON_CATEGORY = """SELECT person_id, round_id, category, count(*) FROM vouchers
GROUP BY person_id, round_id, category HAVING count(*) > 1"""
_PERSON_ROUND = """SELECT person_id, round_id, count(*) FROM vouchers
GROUP BY person_id, round_id HAVING count(*) > 1"""

_DOUBLE_POSTED = """SELECT count(*) FROM (SELECT voucher_id FROM redemptions
WHERE state = 'posted' GROUP BY voucher_id HAVING count(*) > 1) d"""

_BAD_REDEMPTIONS = """
SELECT
  sum(CASE WHEN m.status <> 'enrolled' THEN 1 ELSE 0 END),
  sum(CASE WHEN m.category <> v.category THEN 1 ELSE 0 END),
  sum(CASE WHEN r.redeemed_at_us < v.valid_from_us OR r.redeemed_at_us >= v.valid_until_us
      THEN 1 ELSE 0 END),
  sum(CASE WHEN r.threshold_base_fen < t.threshold_fen THEN 1 ELSE 0 END),
  sum(CASE WHEN r.discount_fen > t.discount_fen THEN 1 ELSE 0 END)
FROM redemptions r
JOIN vouchers v ON v.id = r.voucher_id
JOIN voucher_types t ON t.id = v.type_id
JOIN merchants m ON m.id = r.merchant_id
WHERE r.state = 'posted'
"""

_STATE_MISMATCH = """
SELECT count(*) FROM vouchers v WHERE
  (v.state = 'redeemed') <> EXISTS (SELECT 1 FROM redemptions r
                                    WHERE r.voucher_id = v.id AND r.state = 'posted')
"""

_UNEVENTED = """SELECT count(*) FROM vouchers v WHERE NOT EXISTS
(SELECT 1 FROM voucher_events e WHERE e.voucher_id = v.id AND e.event = 'issue')"""


def gather(
    engine: sa.Engine, with_ids: bool = False, campaign: Campaign | None = None
) -> LedgerFigures:
    """The figures; with `campaign`, also settlement's total over every day (its time zone
    decides the days)."""
    settled = None
    if campaign is not None:
        settled = settlement_total_fen(SqlSettlementStore(engine, campaign.tz), campaign)
    with engine.connect() as c:
        q = c.exec_driver_sql
        types = _type_figures(c)
        bad = [int(x or 0) for x in q(_BAD_REDEMPTIONS).one()]
        ids = (
            frozenset(r[0] for r in driver_rows(c, "SELECT id FROM vouchers"))
            if with_ids
            else frozenset()
        )
        return LedgerFigures(
            types=types,
            over_type=[(r[0], r[1], r[2]) for r in q(_PERSON_TYPE)],
            over_category=[(r[0], r[1], r[2], r[3]) for r in q(_PERSON_CATEGORY)],
            over_round=[(r[0], r[1], r[2]) for r in q(_PERSON_ROUND)],
            double_posted=int(q(_DOUBLE_POSTED).scalar_one()),
            not_enrolled=bad[0],
            wrong_category=bad[1],
            outside_validity=bad[2],
            below_threshold=bad[3],
            over_discount=bad[4],
            state_mismatch=int(q(_STATE_MISMATCH).scalar_one()),
            without_issue_event=int(q(_UNEVENTED).scalar_one()),
            voucher_ids=ids,
            unique_keys=_unique_keys(c),
            rolled_in=_rolled_in(c),
            settlement_owed_fen=settled,
            pool_issued={row[0]: int(row[1]) for row in q(_POOLS)},
            household_held=[(row[0], row[1], int(row[2])) for row in q(_HOUSEHOLDS)],
            rollovers=_recorded_rollovers(c),
        )


_POOLS = "SELECT pool, count(*) FROM voucher_pools GROUP BY pool"
_HOUSEHOLDS = """SELECT h.head_id, v.round_id, count(*) FROM vouchers v
JOIN household_members h ON h.person_id = v.person_id GROUP BY h.head_id, v.round_id"""


_ROLLED_IN = """SELECT into_type_id, sum(added_count) FROM rollovers
WHERE into_type_id IS NOT NULL GROUP BY into_type_id"""


def _rolled_in(c: sa.Connection) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in c.exec_driver_sql(_ROLLED_IN) if row[1]}


_ROLLOVERS = """SELECT from_round, from_type_id, into_round, into_type_id, unclaimed, expired,
value_fen, added_count, remainder_fen FROM rollovers ORDER BY from_round, from_type_id"""

# Vouchers of a rolled-over type that a refund lapsed (redeemed -> expired) at or after the
# rollover's time: they ended unused after it read the ledger (services/reconcile_rollovers.py).
_LAPSED_SINCE = """SELECT r.from_round, r.from_type_id, count(DISTINCT e.voucher_id)
FROM rollovers r
JOIN vouchers v ON v.type_id = r.from_type_id
JOIN voucher_events e ON e.voucher_id = v.id AND e.event = 'lapse' AND e.at_us >= r.at_us
GROUP BY r.from_round, r.from_type_id"""


def _recorded_rollovers(c: sa.Connection) -> list[RecordedMove]:
    lapsed = {(row[0], row[1]): int(row[2]) for row in c.exec_driver_sql(_LAPSED_SINCE)}
    return [
        RecordedMove(RolloverMove(*row), lapsed.get((row[0], row[1]), 0))
        for row in c.exec_driver_sql(_ROLLOVERS)
    ]


def _unique_keys(connection: sa.Connection) -> frozenset[str]:
    inspector = sa.inspect(connection)
    return frozenset(
        str(u["name"])
        for table in ("vouchers", "redemptions", "refunds")
        for u in inspector.get_unique_constraints(table)
    )


def _type_figures(c: sa.Connection) -> list[TypeFigures]:
    states: dict[tuple[str, str], int] = {}
    for type_id, state, n in c.exec_driver_sql(_VOUCHERS_BY_STATE):
        states[(type_id, state)] = int(n)
    posted: dict[str, tuple[int, int, int]] = {}
    reversed_: dict[str, int] = {}
    for type_id, state, n, discount_fen, base_fen in c.exec_driver_sql(_REDEMPTIONS_BY_STATE):
        if state == "posted":
            posted[type_id] = (int(n), int(discount_fen), int(base_fen))
        else:
            reversed_[type_id] = reversed_.get(type_id, 0) + int(n)
    figures = []
    for type_id, round_id, count in c.exec_driver_sql(_TYPES):
        by_state = {s: states.get((type_id, s), 0) for s in ("issued", "redeemed", "expired")}
        n_posted, discount_fen, base_fen = posted.get(type_id, (0, 0, 0))
        figures.append(
            TypeFigures(
                type_id=type_id,
                round_id=round_id,
                count=int(count),
                issued=sum(n for (t, _), n in states.items() if t == type_id),
                available=by_state["issued"],
                redeemed=by_state["redeemed"],
                expired=by_state["expired"],
                posted_redemptions=n_posted,
                discount_fen=discount_fen,
                order_value_fen=base_fen,
                reversed_redemptions=reversed_.get(type_id, 0),
            )
        )
    return figures
