"""Report sections whose figures live in tables other features own: settlement, rollover, fraud.

Each is read through a `SectionReader`: a name, the ledger tables it needs and a function from
the DuckDB connection (ledger attached as `ledger`) and the round to a `Section`. When a needed
table is not in the ledger the section says "not available" instead of failing the report, so
the report works on ledgers made before those features (or before their branches are merged).
Wiring a feature = replacing its reader's `tables` and `read` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

from xfq.reports.ledger_db import has_table

Cell = str | int


@dataclass(frozen=True)
class Section:
    key: str  # settlement | rollover | fraud
    available: bool
    note: str = ""  # why it is not available, or what the figures mean
    headline: tuple[tuple[str, Cell], ...] = ()  # (label, value); *_fen labels are money
    columns: tuple[str, ...] = ()  # column names; *_fen columns are money
    rows: tuple[tuple[Cell, ...], ...] = ()


Reader = Callable[[duckdb.DuckDBPyConnection, str], Section]


@dataclass(frozen=True)
class SectionReader:
    key: str
    tables: tuple[str, ...]  # every one must exist in the ledger
    read: Reader = field(compare=False)

    def __call__(self, db: duckdb.DuckDBPyConnection, round_id: str) -> Section:
        missing = [t for t in self.tables if not has_table(db, t)]
        if missing:
            return Section(self.key, False, f"not available: no {', '.join(missing)} table")
        return self.read(db, round_id)


def _unwired(key: str) -> Reader:
    def read(_db: duckdb.DuckDBPyConnection, _round_id: str) -> Section:
        return Section(key, False, "not available: tables present, reader not wired yet")

    return read


# Table names are those expected from the money (settlement, rollover) and integrity (fraud
# flags) work; their readers are wired when those land on main.
READERS: tuple[SectionReader, ...] = (
    SectionReader("settlement", ("settlements",), _unwired("settlement")),
    SectionReader("rollover", ("rollovers",), _unwired("rollover")),
    SectionReader("fraud", ("fraud_flags",), _unwired("fraud")),
)


def read_sections(
    db: duckdb.DuckDBPyConnection,
    round_id: str,
    readers: tuple[SectionReader, ...] = READERS,
) -> tuple[Section, ...]:
    return tuple(reader(db, round_id) for reader in readers)
