"""The fraud rules' input read from the ledger, and their flags stored for review."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from xfq.adapters.sql import tables
from xfq.adapters.sql.bulk_read import driver_rows
from xfq.adapters.sql.times import from_us, to_us
from xfq.domain.audit import canonical_json
from xfq.domain.fraud import (
    Flag,
    FlagStatus,
    FraudInput,
    GeoPoint,
    MerchantRecord,
    RedemptionRecord,
    Rule,
)

# One row per redemption: its voucher's type, when its round's first voucher was issued (the
# release), and what was refunded against it.
_RECORDS = (
    "SELECT r.id, r.merchant_id, v.person_id, v.type_id, t.threshold_fen, r.discount_fen, "
    "r.threshold_base_fen, r.redeemed_at_us, o.opened_us, "
    "coalesce(f.refunded_fen, 0), f.first_refund_us "
    "FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id "
    "JOIN voucher_types t ON t.id = v.type_id "
    "JOIN (SELECT round_id, min(issued_at_us) AS opened_us FROM vouchers GROUP BY round_id) o "
    "ON o.round_id = v.round_id "
    "LEFT JOIN (SELECT redemption_id, sum(refund_fen) AS refunded_fen, "
    "min(refunded_at_us) AS first_refund_us FROM refunds GROUP BY redemption_id) f "
    "ON f.redemption_id = r.id"
)


def load_input(engine: sa.Engine) -> FraudInput:
    with engine.connect() as c:
        rows = sorted(driver_rows(c, _RECORDS))  # by redemption id: a stable scan order
        merchant_rows = driver_rows(c, "SELECT id, category FROM merchants")
        located = driver_rows(c, "SELECT kind, id, lat_e6, lon_e6 FROM locations")
    places: dict[str, dict[str, GeoPoint]] = {"merchant": {}, "person": {}}
    for kind, i, lat, lon in located:
        places.setdefault(kind, {})[i] = GeoPoint(lat, lon)
    opened = {us: from_us(us) for us in {row[8] for row in rows}}  # one release per round
    records = [
        RedemptionRecord(
            id=row[0],
            merchant_id=row[1],
            person_id=row[2],
            type_id=row[3],
            threshold_fen=row[4],
            discount_fen=row[5],
            order_fen=row[6],
            redeemed_at=from_us(row[7]),
            opened_at=opened[row[8]],
            refunded_fen=int(row[9]),
            first_refund_at=None if row[10] is None else from_us(row[10]),
        )
        for row in rows
    ]
    merchants = {
        mid: MerchantRecord(mid, category, places["merchant"].get(mid))
        for mid, category in merchant_rows
    }
    return FraudInput(records, merchants, places["person"])


def save_locations(engine: sa.Engine, kind: str, points: dict[str, GeoPoint]) -> None:
    """Coarse locations (rounded to 0.01 degree, about 1 km), replacing earlier ones."""
    rows = [(kind, i, _coarse(p.lat_e6), _coarse(p.lon_e6)) for i, p in points.items()]
    # On the driver's cursor: through Core, 120,000 rows cost ~4 s of parameter building.
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    values = ", ".join([mark] * 4)
    with engine.begin() as c:
        cursor = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(
            f"INSERT INTO {tables.locations.name} (kind, id, lat_e6, lon_e6) VALUES ({values}) "
            "ON CONFLICT (kind, id) DO UPDATE SET lat_e6 = excluded.lat_e6, "
            "lon_e6 = excluded.lon_e6",
            rows,
        )


def _coarse(e6: int) -> int:
    return round(e6, -4)


@dataclass(frozen=True)
class StoredFlag:
    id: str
    rule: Rule
    merchant_id: str
    person_id: str | None
    redemption_ids: list[str]
    evidence: dict[str, object]
    explanation: str
    found_at: datetime
    status: FlagStatus
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_reason: str | None


def store_flags(engine: sa.Engine, flags: list[Flag], at: datetime) -> int:
    """Insert new flags, refresh the evidence of open ones; reviewed flags are left as they
    were reviewed. The number of new flags."""
    f = tables.fraud_flags
    with engine.connect() as c:
        known = set(c.execute(sa.select(f.c.id)).scalars())
    # Writes only inside the transaction: SQLite then takes its write lock at the first
    # statement and waits for the ledger's writer, instead of failing on a stale read.
    insert, new = _insert_if_new(engine.dialect), 0
    with engine.begin() as c:
        for flag in flags:
            values = {
                "redemption_ids": json.dumps(list(flag.redemption_ids)),
                "evidence": canonical_json(flag.evidence),
                "explanation": flag.explanation,
            }
            if flag.id in known:
                open_only = (f.c.id == flag.id) & (f.c.status == FlagStatus.OPEN.value)
                c.execute(f.update().where(open_only).values(**values))
                continue
            row = {
                "id": flag.id,
                "rule": flag.rule.value,
                "merchant_id": flag.merchant_id,
                "person_id": flag.person_id,
                "found_at_us": to_us(at),
                "status": FlagStatus.OPEN.value,
            }
            new += len(c.execute(insert.values(**row, **values)).all())
    return new


def _insert_if_new(dialect: sa.Dialect) -> ReturningInsert[tuple[str]]:
    """A flag's INSERT that leaves one stored meanwhile by another scan (another worker's);
    it returns the id when it inserted."""
    f = tables.fraud_flags
    if dialect.name == "postgresql":
        return postgresql.insert(f).on_conflict_do_nothing(index_elements=["id"]).returning(f.c.id)
    return sqlite.insert(f).on_conflict_do_nothing(index_elements=["id"]).returning(f.c.id)


def _stored(row: sa.Row[tuple[object, ...]]) -> StoredFlag:
    m = row._mapping
    return StoredFlag(
        id=m["id"],
        rule=Rule(m["rule"]),
        merchant_id=m["merchant_id"],
        person_id=m["person_id"],
        redemption_ids=json.loads(m["redemption_ids"]),
        evidence=json.loads(m["evidence"]),
        explanation=m["explanation"],
        found_at=from_us(m["found_at_us"]),
        status=FlagStatus(m["status"]),
        reviewed_by=m["reviewed_by"],
        reviewed_at=None if m["reviewed_at_us"] is None else from_us(m["reviewed_at_us"]),
        review_reason=m["review_reason"],
    )


def list_flags(
    engine: sa.Engine, status: FlagStatus | None = None, limit: int = 500
) -> list[StoredFlag]:
    """Open flags first, then by rule and merchant."""
    f = tables.fraud_flags
    reviewed = sa.case((f.c.status == FlagStatus.OPEN.value, 0), else_=1)
    order = (reviewed, f.c.rule, f.c.merchant_id, f.c.person_id)
    query = sa.select(f).order_by(*order).limit(limit)
    if status is not None:
        query = query.where(f.c.status == status.value)
    with engine.connect() as c:
        return [_stored(row) for row in c.execute(query)]


def flag_counts(engine: sa.Engine) -> dict[str, int]:
    f = tables.fraud_flags
    query = sa.select(f.c.status, sa.func.count()).group_by(f.c.status)
    with engine.connect() as c:
        found = {str(status): int(n) for status, n in c.execute(query)}
    return {s.value: found.get(s.value, 0) for s in FlagStatus}


def get_flag(engine: sa.Engine, flag_id: str) -> StoredFlag | None:
    f = tables.fraud_flags
    with engine.connect() as c:
        row = c.execute(sa.select(f).where(f.c.id == flag_id)).first()
    return None if row is None else _stored(row)


class SqlFraudStore:
    """Implements `xfq.ports.FraudStore` on a ledger's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def fraud_input(self) -> FraudInput:
        return load_input(self.engine)

    def store_flags(self, flags: list[Flag], at: datetime) -> int:
        return store_flags(self.engine, flags, at)
