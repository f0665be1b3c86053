"""Reading the audit trail back (for verification, digests and auditors)."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from xfq.adapters.sql import tables
from xfq.domain.audit import AuditEntry

_a = tables.audit_log
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
