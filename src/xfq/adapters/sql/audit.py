"""Reading the audit trail back (for verification, digests and auditors)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from xfq.adapters.sql import tables
from xfq.domain.audit import AuditEntry, next_entry

_a = tables.audit_log

# Appends to the chain one at a time across processes (a PostgreSQL lock held until the
# appending transaction ends): each reads the last entry only once the append before it has
# committed, so no two entries chain onto the same one. SQLite's writer holds the whole database.
CHAIN_LOCK = 0x7866_7103  # beside schema.MIGRATION_LOCK and bootstrap.EMBEDDED_ENGINE_LOCK
CHAIN_LOCK_SQL = f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"
_COLUMNS = (
    _a.c.seq,
    _a.c.at_us,
    _a.c.actor,
    _a.c.action,
    _a.c.subject,
    _a.c.details,
    _a.c.prev_hash,
    _a.c.hash,
)


def iter_entries(engine: sa.Engine, chunk: int = 10_000) -> Iterator[AuditEntry]:
    """Every entry in stored order (by sequence number), read in chunks."""
    after = None
    while True:
        query = sa.select(*_COLUMNS).order_by(_a.c.seq).limit(chunk)
        if after is not None:
            query = query.where(_a.c.seq > after)
        with engine.connect() as c:
            rows = c.execute(query).all()
        for row in rows:
            yield AuditEntry(*row)
        if len(rows) < chunk:
            return
        after = rows[-1][0]


def page(engine: sa.Engine, after_seq: int, limit: int) -> list[AuditEntry]:
    query = sa.select(*_COLUMNS).where(_a.c.seq > after_seq).order_by(_a.c.seq).limit(limit)
    with engine.connect() as c:
        return [AuditEntry(*row) for row in c.execute(query)]


def append(
    c: sa.Connection,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    at: datetime,
) -> AuditEntry:
    """Append an entry inside the caller's transaction, after a write of its own: that write
    holds SQLite's write lock, so no other append can come between the read and the insert."""
    if c.dialect.name == "postgresql":
        c.exec_driver_sql(CHAIN_LOCK_SQL)  # its own statement: the read below sees the last commit
    last = c.execute(sa.select(*_COLUMNS).order_by(_a.c.seq.desc()).limit(1)).first()
    entry = next_entry(None if last is None else AuditEntry(*last), actor, action, subject,
                       details, at)  # fmt: skip
    c.execute(
        _a.insert().values(
            seq=entry.seq,
            at_us=entry.at_us,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            details=entry.details_json,
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )
    )
    return entry
