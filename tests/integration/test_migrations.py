"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from servers.postgres_fixtures import LedgerDb
from xfq.adapters.sql.ledger import REVOKED_KEYS
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


def test_the_revoked_keys_every_worker_reads_each_second_come_from_their_index(
    ledger_db: LedgerDb,
) -> None:
    engine = create_engine(ledger_db.url)
    migrate(engine)
    query = str(REVOKED_KEYS.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            # An empty table is cheaper to scan: ask which index the planner would take.
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = [row[0] for row in connection.exec_driver_sql(f"EXPLAIN {query}")]
        else:
            plan = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")]
    engine.dispose()
    assert "ix_merchant_keys_revoked" in " ".join(plan), plan


def test_the_ledger_database_runs_with_synchronous_commit(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
        assert connection.exec_driver_sql("SHOW fsync").scalar_one() == "on"
    engine.dispose()
