"""Fixtures: one PostgreSQL cluster per test session, a fresh ledger database per test.

`ledger_db` is parametrized over both backends of the ledger (sqlite | postgresql): a test that
takes it runs once on a SQLite file and once on a PostgreSQL database. Each PostgreSQL database
is a copy of a template migrated once per session (CREATE DATABASE ... TEMPLATE).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from servers.postgres_server import PostgresServer
from xfq.adapters.sql.schema import create_engine, migrate

TEMPLATE = "xfq_template"
BACKENDS = ("sqlite", "postgresql")
_serial = itertools.count()


@dataclass
class LedgerDb:
    """A ledger database of either backend, with plain SQL for the tests' own checks."""

    backend: str
    url: str
    server: PostgresServer | None = None

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.begin() as c:
                return [tuple(row) for row in c.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0][0]

    def execute(self, sql: str) -> None:
        """Run one statement in a transaction of its own, e.g. to tamper with the ledger
        (SQLite's driver refuses several in one call)."""
        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.begin() as c:
                c.exec_driver_sql(sql)
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        server.execute(f"CREATE DATABASE {TEMPLATE}")
        engine = create_engine(server.url(TEMPLATE))
        migrate(engine)
        engine.dispose()
        yield server
    finally:
        server.close()


def fresh_postgres_url(server: PostgresServer) -> str:
    """A new database with the migrated schema and nothing in it."""
    name = f"ledger_{next(_serial)}"
    server.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return server.url(name)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = fresh_postgres_url(postgres_server)
    yield url
    if postgres_server.process is not None:  # a test may have stopped the server
        name = url.rsplit("/", 1)[1]
        postgres_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=BACKENDS)
def ledger_db(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerDb:
    if request.param == "sqlite":
        return LedgerDb("sqlite", f"sqlite:///{tmp_path / 'ledger.db'}")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return LedgerDb("postgresql", request.getfixturevalue("postgres_url"), server)
