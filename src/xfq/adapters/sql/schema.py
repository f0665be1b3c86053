"""Opening a ledger database: engine settings per dialect and migrations to the latest schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from xfq.adapters.sql.link import LinkBounds, connect_bounded, unbounded_answers

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x7866_7101  # PostgreSQL advisory lock key held while migrating


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def database_url(value: str) -> str:
    """A SQLAlchemy URL from what a user gives: a `postgresql://` URL (driven by psycopg 3),
    a `sqlite:///` URL, or a path to a SQLite file."""
    for prefix in ("postgresql://", "postgres://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value.removeprefix(prefix)
    if value.startswith(("postgresql+", "sqlite:")):
        return value
    return sqlite_url(Path(value))


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres:"))


def create_engine(url: str, bounds: LinkBounds | None = None) -> sa.Engine:
    """An engine whose connections are set for a durable ledger; on PostgreSQL, with `bounds`
    on the link (default: connect and TCP bounds, no bound on a query's answer)."""
    if url.startswith("sqlite"):
        # Pooled: a new SQLite connection costs its PRAGMAs (~0.3 ms); connections are handed
        # between threads one at a time, never shared at once, so the thread check can go.
        engine = sa.create_engine(
            url,
            paramstyle="named",
            pool_size=16,
            max_overflow=16,
            connect_args={"check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _explicit_begin)
        return engine
    return _postgres_engine(database_url(url), bounds or LinkBounds())


def _postgres_engine(url: str, bounds: LinkBounds) -> sa.Engine:
    # As on SQLite: autocommit at the driver level and transactions begun explicitly, so that a
    # reader's connection never sits idle inside a transaction between two requests.
    engine = sa.create_engine(
        url,
        pool_size=16,
        max_overflow=16,
        pool_pre_ping=True,  # a connection from before a server restart is replaced, not used
        connect_args={
            "autocommit": True,
            "options": "-c synchronous_commit=on",
            **bounds.libpq_params(),
        },
    )
    sa.event.listen(engine, "do_connect", connect_bounded(bounds))
    sa.event.listen(engine, "begin", _explicit_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: transactions are begun explicitly (BEGIN IMMEDIATE) so
    # that a writer takes the lock before it reads what it will decide on.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an answered claim survives power loss
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # The default 2 MB page cache misses on a city's ledger (~100 MB for one round): each miss
    # is a system call that gives up the GIL. 64 MB of cache and a memory map keep it in process.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA mmap_size=268435456")
    # Checkpoint every ~64 MB of WAL instead of ~4 MB: the writer pays each checkpoint inside a
    # COMMIT, and hot index pages changed by many batches are then copied back once, not often.
    cursor.execute("PRAGMA wal_autocheckpoint=16384")
    cursor.close()


def _explicit_begin(connection: sa.Connection) -> None:
    # SQLite: deferred, so a read through SQLAlchemy does not take the write lock (the claim and
    # checkout writes go through the group-commit writer, which begins IMMEDIATE itself).
    # On the driver's cursor: a connection set to stream results would DECLARE a cursor for it.
    connection.connection.cursor().execute("BEGIN")


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: sa.Engine) -> None:
    """Bring the ledger's schema to the latest revision (idempotent)."""
    with engine.begin() as connection, unbounded_answers(connection):
        if connection.dialect.name == "postgresql":  # processes starting together migrate once
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        command.upgrade(alembic_config(connection), "head")
