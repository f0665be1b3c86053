"""Settlement's reads and closings on the SQL ledger (implements `ports.SettlementStore`)."""

from __future__ import annotations

from datetime import date, tzinfo

import sqlalchemy as sa

from xfq.adapters.sql import audit, tables
from xfq.adapters.sql.bulk_read import driver_rows
from xfq.adapters.sql.times import from_us, to_us
from xfq.domain.settlement import (
    DaySettlement,
    LineKind,
    Settled,
    SettledRedemption,
    StatementLine,
    settle_day,
)

_REDEMPTIONS = """
SELECT r.id, r.merchant_id, v.type_id, r.order_ref, r.threshold_base_fen, r.discount_fen,
       r.redeemed_at_us, r.reversed_at_us
FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id
"""


class SqlSettlementStore:
    def __init__(self, engine: sa.Engine, tz: tzinfo) -> None:
        self._engine = engine
        self._tz = tz

    def redemptions(self) -> list[SettledRedemption]:
        rows = driver_rows(self._engine, _REDEMPTIONS)
        return [
            SettledRedemption(
                redemption_id=row[0],
                merchant_id=row[1],
                type_id=row[2],
                order_ref=row[3],
                order_amount_fen=int(row[4]),
                discount_fen=int(row[5]),
                redeemed_at=from_us(row[6]),
                reversed_at=None if row[7] is None else from_us(row[7]),
            )
            for row in rows
        ]

    def settled(self) -> Settled:
        d, s = tables.settlement_days, tables.settlement_lines
        with self._engine.connect() as c:
            days = frozenset(date.fromisoformat(x) for x in c.execute(sa.select(d.c.day)).scalars())
            kinds = c.execute(sa.select(s.c.redemption_id, s.c.kind)).all()
        return Settled(
            closed_days=days,
            paid=frozenset(r for r, k in kinds if k == LineKind.REDEMPTION),
            clawed_back=frozenset(r for r, k in kinds if k == LineKind.REVERSAL),
        )

    def closed_day(self, day: date) -> DaySettlement | None:
        d = tables.settlement_days
        with self._engine.connect() as c:
            closed_at_us = c.execute(
                sa.select(d.c.closed_at_us).where(d.c.day == day.isoformat())
            ).scalar_one_or_none()
            if closed_at_us is None:
                return None
            lines, held = self._lines(c, day)
        return settle_day(day, lines, held, from_us(closed_at_us))

    def closed_lines(self) -> list[StatementLine]:
        with self._engine.connect() as c:
            return self._lines(c, None)[0]

    def _lines(
        self, c: sa.Connection, day: date | None
    ) -> tuple[list[StatementLine], frozenset[str]]:
        s = tables.settlement_lines
        query = sa.select(s)
        if day is not None:
            query = query.where(s.c.day == day.isoformat())
        lines, held = [], set()
        for row in c.execute(query).mappings():
            lines.append(
                StatementLine(
                    day=date.fromisoformat(row["day"]),
                    merchant_id=row["merchant_id"],
                    kind=LineKind(row["kind"]),
                    redemption_id=row["redemption_id"],
                    type_id=row["type_id"],
                    order_ref=row["order_ref"],
                    order_amount_fen=int(row["order_amount_fen"]),
                    discount_fen=int(row["discount_fen"]),
                    reversal_fen=int(row["reversal_fen"]),
                    at=from_us(row["at_us"]),
                )
            )
            if row["held"]:
                held.add(row["merchant_id"])
        return lines, frozenset(held)

    def held_merchants(self) -> frozenset[str]:
        m = tables.merchants
        with self._engine.connect() as c:
            query = sa.select(m.c.id).where(m.c.status == "suspended")
            return frozenset(c.execute(query).scalars())

    def record_closing(self, settlement: DaySettlement, closed_by: str) -> bool:
        assert settlement.closed_at is not None
        day = settlement.day.isoformat()
        rows = [
            {
                "day": day,
                "redemption_id": line.redemption_id,
                "kind": line.kind.value,
                "merchant_id": line.merchant_id,
                "type_id": line.type_id,
                "order_ref": line.order_ref,
                "order_amount_fen": line.order_amount_fen,
                "discount_fen": line.discount_fen,
                "reversal_fen": line.reversal_fen,
                "at_us": to_us(line.at),
                "held": statement.held,
            }
            for statement in settlement.statements
            for line in statement.lines
        ]
        try:
            with self._engine.begin() as c:
                c.execute(
                    tables.settlement_days.insert().values(
                        day=day,
                        closed_at_us=to_us(settlement.closed_at),
                        closed_by=closed_by,
                        owed_fen=settlement.owed_fen,
                        payable_fen=settlement.payable_fen,
                        held_fen=settlement.held_fen,
                        lines=len(rows),
                    )
                )
                if rows:
                    c.execute(tables.settlement_lines.insert(), rows)
                audit.append(
                    c,
                    closed_by,
                    "settlement.closed",
                    day,
                    {
                        "owed_fen": settlement.owed_fen,
                        "payable_fen": settlement.payable_fen,
                        "held_fen": settlement.held_fen,
                        "lines": len(rows),
                    },
                    settlement.closed_at,
                )
        except sa.exc.IntegrityError:
            return False  # closed meanwhile by someone else: their closing stands
        return True
