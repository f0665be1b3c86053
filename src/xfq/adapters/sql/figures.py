"""The figures reconciliation needs, read from the ledger with plain SQL aggregates."""

from __future__ import annotations

import sqlalchemy as sa

from xfq.services.reconcile import LedgerFigures, TypeFigures

_TYPE_FIGURES = """
SELECT t.id, t.round_id, t.count,
  (SELECT count(*) FROM vouchers v WHERE v.type_id = t.id),
  (SELECT count(*) FROM vouchers v WHERE v.type_id = t.id AND v.state = 'issued'),
  (SELECT count(*) FROM vouchers v WHERE v.type_id = t.id AND v.state = 'redeemed'),
  (SELECT count(*) FROM vouchers v WHERE v.type_id = t.id AND v.state = 'expired'),
  (SELECT count(*) FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id
     WHERE v.type_id = t.id AND r.state = 'posted'),
  (SELECT coalesce(sum(r.discount_fen), 0) FROM redemptions r JOIN vouchers v
     ON v.id = r.voucher_id WHERE v.type_id = t.id AND r.state = 'posted'),
  (SELECT coalesce(sum(r.threshold_base_fen), 0) FROM redemptions r JOIN vouchers v
     ON v.id = r.voucher_id WHERE v.type_id = t.id AND r.state = 'posted'),
  (SELECT count(*) FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id
     WHERE v.type_id = t.id AND r.state = 'reversed')
FROM voucher_types t ORDER BY t.round_id, t.id
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


def gather(engine: sa.Engine, with_ids: bool = False) -> LedgerFigures:
    with engine.connect() as c:
        q = c.exec_driver_sql
        types = [TypeFigures(*row) for row in q(_TYPE_FIGURES)]
        bad = [int(x or 0) for x in q(_BAD_REDEMPTIONS).one()]
        ids = frozenset(q("SELECT id FROM vouchers").scalars()) if with_ids else frozenset()
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
        )


def _unique_keys(connection: sa.Connection) -> frozenset[str]:
    inspector = sa.inspect(connection)
    return frozenset(
        str(u["name"])
        for table in ("vouchers", "redemptions", "refunds")
        for u in inspector.get_unique_constraints(table)
    )
