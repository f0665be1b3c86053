"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from servers.postgres_fixtures import LedgerDb
from xfq.adapters.sql.schema import create_engine, migrate
from xfq.adapters.sql.tables import metadata


def test_migrating_a_new_ledger_gives_the_declared_schema(ledger_db: LedgerDb) -> None:
    engine = create_engine(ledger_db.url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []


def test_the_ledger_database_runs_with_synchronous_commit(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
        assert connection.exec_driver_sql("SHOW fsync").scalar_one() == "on"
    engine.dispose()
