"""The fraud rules' input as stored: coarse locations replace earlier ones, on both ledgers."""

from __future__ import annotations

from servers.postgres_fixtures import LedgerDb
from xfq.adapters.sql.fraud import load_input, save_locations
from xfq.adapters.sql.schema import create_engine, migrate
from xfq.domain.fraud import GeoPoint


def test_a_second_location_replaces_the_first_and_is_kept_coarse(ledger_db: LedgerDb) -> None:
    engine = create_engine(ledger_db.url)
    migrate(engine)
    save_locations(engine, "person", {"p1": GeoPoint(37_870_123, 112_550_456)})
    save_locations(
        engine, "person", {"p1": GeoPoint(38_000_000, 113_009_999), "p2": GeoPoint(1, 2)}
    )
    homes = load_input(engine).homes
    engine.dispose()
    assert homes == {"p1": GeoPoint(38_000_000, 113_010_000), "p2": GeoPoint(0, 0)}
