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


# Closed settlement days of the round's voucher types (schema of the money work, 0005_money):
# a line is a redemption (discount owed) or a reversal (discount given back); held = the
# merchant was suspended at closing.
_SETTLEMENT = """
SELECT l.day, count(*) AS lines,
       sum(l.discount_fen) - sum(l.reversal_fen) AS owed_fen,
       sum(CASE WHEN l.held THEN l.discount_fen - l.reversal_fen ELSE 0 END) AS held_fen,
       count(DISTINCT l.merchant_id) AS merchants
FROM ledger.settlement_lines l JOIN ledger.voucher_types t ON t.id = l.type_id
WHERE t.round_id = $round GROUP BY l.day ORDER BY l.day
"""


def _settlement(db: duckdb.DuckDBPyConnection, round_id: str) -> Section:
    rows = tuple(
        (str(day), int(lines), int(owed), int(held), int(merchants))
        for day, lines, owed, held, merchants in db.execute(
            _SETTLEMENT, {"round": round_id}
        ).fetchall()
    )
    owed_fen = sum(r[2] for r in rows)
    return Section(
        "settlement",
        True,
        "closed days only; redemptions after the last closed day are not settled yet",
        headline=(
            ("closed_days", len(rows)),
            ("settled_owed_fen", owed_fen),
            ("held_fen", sum(r[3] for r in rows)),
        ),
        columns=("day", "lines", "owed_fen", "held_fen", "merchants"),
        rows=rows,
    )


# Value carried out of the round into a later one, and into the round from earlier ones.
_ROLLOVER = """
SELECT from_round, from_type_id, into_round, coalesce(into_type_id, '-'), unclaimed, expired,
       value_fen, added_count, remainder_fen
FROM ledger.rollovers WHERE from_round = $round OR into_round = $round
ORDER BY from_round, from_type_id
"""


def _rollover(db: duckdb.DuckDBPyConnection, round_id: str) -> Section:
    rows = tuple(
        tuple(int(v) if isinstance(v, int) else str(v) for v in row)
        for row in db.execute(_ROLLOVER, {"round": round_id}).fetchall()
    )
    out_fen = sum(int(r[6]) for r in rows if r[0] == round_id)
    in_fen = sum(int(r[6]) for r in rows if r[2] == round_id)
    return Section(
        "rollover",
        True,
        "" if rows else "nothing rolled over from or into this round",
        headline=(("rolled_out_fen", out_fen), ("rolled_in_fen", in_fen)),
        columns=(
            "from_round",
            "from_type_id",
            "into_round",
            "into_type_id",
            "unclaimed",
            "expired",
            "value_fen",
            "added_count",
            "remainder_fen",
        ),
        rows=rows,
    )


# Cash-out fraud flags (migration 0006_integrity) are found over the whole ledger, not per
# round: the section lists them all, open ones first, with their review.
_FRAUD = """
SELECT rule, merchant_id, coalesce(person_id, '') AS person_id, status,
       coalesce(review_reason, '') AS review, explanation
FROM ledger.fraud_flags
ORDER BY status <> 'open', rule, merchant_id, person_id
LIMIT 500
"""


def _fraud(db: duckdb.DuckDBPyConnection, _round_id: str) -> Section:
    rows = tuple(tuple(str(v) for v in row) for row in db.execute(_FRAUD).fetchall())
    by_status = {s: sum(1 for r in rows if r[3] == s) for s in ("open", "confirmed", "dismissed")}
    return Section(
        "fraud",
        True,
        "flags of the whole campaign (xfq fraud scan); at most 500 listed"
        if rows
        else "no flags: `xfq fraud scan` has found nothing (or has not run)",
        headline=tuple(by_status.items()),
        columns=("rule", "merchant_id", "person_id", "status", "review", "explanation"),
        rows=rows,
    )


# Settlement and rollover read the money work's tables (migration 0005_money), fraud flags the
# integrity work's (0006_integrity).
READERS: tuple[SectionReader, ...] = (
    SectionReader("settlement", ("settlement_lines", "voucher_types"), _settlement),
    SectionReader("rollover", ("rollovers",), _rollover),
    SectionReader("fraud", ("fraud_flags",), _fraud),
)


def read_sections(
    db: duckdb.DuckDBPyConnection,
    round_id: str,
    readers: tuple[SectionReader, ...] = READERS,
) -> tuple[Section, ...]:
    return tuple(reader(db, round_id) for reader in readers)
