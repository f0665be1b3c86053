"""Rollovers on the SQL ledger (implements `ports.RolloverStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from xfq.adapters.sql import audit, tables
from xfq.adapters.sql.times import to_us
from xfq.domain.rollover import RolloverMove


class SqlRolloverStore:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def moves(self, from_round: str | None = None) -> list[RolloverMove]:
        r = tables.rollovers
        query = sa.select(
            r.c.from_round,
            r.c.from_type_id,
            r.c.into_round,
            r.c.into_type_id,
            r.c.unclaimed,
            r.c.expired,
            r.c.value_fen,
            r.c.added_count,
            r.c.remainder_fen,
        ).order_by(r.c.from_round, r.c.from_type_id)
        if from_round is not None:
            query = query.where(r.c.from_round == from_round)
        with self._engine.connect() as c:
            return [RolloverMove(*row) for row in c.execute(query)]

    def issued_and_expired(self, round_id: str) -> dict[str, tuple[int, int]]:
        """Per voucher type of the round: vouchers issued, and of them expired."""
        v = tables.vouchers
        expired = sa.func.sum(sa.case((v.c.state == "expired", 1), else_=0))
        query = (
            sa.select(v.c.type_id, sa.func.count(), expired)
            .where(v.c.round_id == round_id)
            .group_by(v.c.type_id)
        )
        with self._engine.connect() as c:
            return {row[0]: (int(row[1]), int(row[2] or 0)) for row in c.execute(query)}

    def record(self, moves: list[RolloverMove], at: datetime) -> bool:
        """Record a round's moves at once; False if that round had rolled over already."""
        rows = [
            {
                "from_round": m.from_round,
                "from_type_id": m.from_type_id,
                "into_round": m.into_round,
                "into_type_id": m.into_type_id,
                "unclaimed": m.unclaimed,
                "expired": m.expired,
                "value_fen": m.value_fen,
                "added_count": m.added_count,
                "remainder_fen": m.remainder_fen,
                "at_us": to_us(at),
            }
            for m in moves
        ]
        try:
            with self._engine.begin() as c:
                c.execute(tables.rollovers.insert(), rows)
                audit.append(c, "xfq", "rollover", moves[0].from_round, _audited(moves), at)
        except sa.exc.IntegrityError:
            return False
        return True


def _audited(moves: list[RolloverMove]) -> dict[str, Any]:
    return {
        "into_round": moves[0].into_round,
        "moves": [
            {
                "from_type_id": m.from_type_id,
                "into_type_id": m.into_type_id,
                "unclaimed": m.unclaimed,
                "expired": m.expired,
                "value_fen": m.value_fen,
                "added_count": m.added_count,
                "remainder_fen": m.remainder_fen,
            }
            for m in moves
        ],
    }
