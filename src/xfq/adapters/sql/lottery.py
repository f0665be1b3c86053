"""Lottery rounds, registrations and households on the SQL ledger."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from xfq.adapters.sql import tables
from xfq.adapters.sql.times import from_us, to_us
from xfq.domain.lottery import Registration
from xfq.ports import LotteryState


class SqlLotteryStore:
    """Implements `xfq.ports.LotteryStore`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def state(self, round_id: str) -> LotteryState | None:
        t = tables.lottery_rounds
        with self._engine.connect() as c:
            row = c.execute(sa.select(t).where(t.c.round_id == round_id)).first()
            if row is None:
                return None
            count = c.execute(
                sa.select(sa.func.count()).where(
                    tables.lottery_registrations.c.round_id == round_id
                )
            ).scalar_one()
        return LotteryState(
            round_id=row.round_id,
            seed_hex=row.seed_hex,
            seed_sha256=row.seed_sha256,
            committed_at=from_us(row.committed_at_us),
            frozen_at=None if row.frozen_at_us is None else from_us(row.frozen_at_us),
            registrations_sha256=row.registrations_sha256,
            drawn_at=None if row.drawn_at_us is None else from_us(row.drawn_at_us),
            draw_json=row.draw_json,
            registrations=int(count),
        )

    def commit_seed(
        self, round_id: str, seed_hex: str, seed_sha256: str, by: str, at: datetime
    ) -> bool:
        row = {
            "round_id": round_id,
            "seed_hex": seed_hex,
            "seed_sha256": seed_sha256,
            "committed_at_us": to_us(at),
            "committed_by": by,
        }
        try:
            with self._engine.begin() as c:
                c.execute(tables.lottery_rounds.insert().values(**row))
        except sa.exc.IntegrityError:
            return False
        return True

    def register(self, round_id: str, person_id: str, type_id: str, at: datetime) -> bool:
        row = {
            "round_id": round_id,
            "person_id": person_id,
            "type_id": type_id,
            "registered_at_us": to_us(at),
        }
        try:
            with self._engine.begin() as c:
                c.execute(tables.lottery_registrations.insert().values(**row))
        except sa.exc.IntegrityError:
            return False
        return True

    def registrations(self, round_id: str, person_id: str | None = None) -> list[Registration]:
        t = tables.lottery_registrations
        query = sa.select(t.c.person_id, t.c.type_id).where(t.c.round_id == round_id)
        if person_id is not None:
            query = query.where(t.c.person_id == person_id)
        with self._engine.connect() as c:
            return sorted(Registration(p, ty) for p, ty in c.execute(query))

    def freeze(self, round_id: str, registrations_sha256: str, at: datetime) -> bool:
        t = tables.lottery_rounds
        update = (
            t.update()
            .where(t.c.round_id == round_id, t.c.frozen_at_us.is_(None))
            .values(frozen_at_us=to_us(at), registrations_sha256=registrations_sha256)
        )
        with self._engine.begin() as c:
            return c.execute(update).rowcount == 1

    def record_draw(self, round_id: str, draw_json: str, at: datetime) -> bool:
        t = tables.lottery_rounds
        update = (
            t.update()
            .where(t.c.round_id == round_id, t.c.drawn_at_us.is_(None))
            .values(drawn_at_us=to_us(at), draw_json=draw_json)
        )
        with self._engine.begin() as c:
            return c.execute(update).rowcount == 1

    def draws(self) -> dict[str, str]:
        """Round id -> published draw file, of every drawn round."""
        t = tables.lottery_rounds
        query = sa.select(t.c.round_id, t.c.draw_json).where(t.c.draw_json.is_not(None))
        with self._engine.connect() as c:
            return {row[0]: row[1] for row in c.execute(query)}

    def claim_keys(self, round_id: str) -> set[tuple[str, str]]:
        """(person, claim key) of the round's vouchers already in the ledger."""
        v = tables.vouchers
        query = sa.select(v.c.person_id, v.c.claim_key).where(v.c.round_id == round_id)
        with self._engine.connect() as c:
            return {(row[0], row[1]) for row in c.execute(query)}


class SqlHouseholdStore:
    """Implements `xfq.ports.HouseholdStore`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def households(self) -> dict[str, str]:
        """Member -> head, for every declared household."""
        t = tables.household_members
        with self._engine.connect() as c:
            return {row[0]: row[1] for row in c.execute(sa.select(t.c.person_id, t.c.head_id))}

    def members(self, head_id: str) -> list[str]:
        t = tables.household_members
        query = sa.select(t.c.person_id).where(t.c.head_id == head_id).order_by(t.c.person_id)
        with self._engine.connect() as c:
            return list(c.execute(query).scalars())

    def add_members(self, head_id: str, people: list[str], at: datetime) -> list[str]:
        """Add `people` to `head_id`'s household in one transaction; those already in another
        household are returned and nothing is written then."""
        t = tables.household_members
        with self._engine.begin() as c:
            taken = (
                c.execute(
                    sa.select(t.c.person_id).where(
                        t.c.person_id.in_(people), t.c.head_id != head_id
                    )
                )
                .scalars()
                .all()
            )
            if taken:
                return sorted(taken)
            known = set(
                c.execute(sa.select(t.c.person_id).where(t.c.person_id.in_(people))).scalars()
            )
            rows = [
                {"person_id": p, "head_id": head_id, "declared_at_us": to_us(at)}
                for p in people
                if p not in known
            ]
            if rows:
                c.execute(t.insert(), rows)
        return []
