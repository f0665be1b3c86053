"""The spending feed: what people spent per day, for winners and for people who tried and failed.

Schema (CSV with a header line, or Parquet), one row per person per day:

| column      | type                  | meaning                                                   |
|-------------|-----------------------|-----------------------------------------------------------|
| person_id   | text                  | the person's id as in the ledger (`vouchers.person_id`)   |
| day         | date (`YYYY-MM-DD`)   | the campaign's local day                                  |
| spend_fen   | integer ≥ 0           | value of everything the person bought that day, in fen,  |
|             |                       | before any voucher discount                               |

A person is in the panel when they have at least one row; a day without a row counts as 0 fen.
(person_id, day) is unique. Winners are read from the ledger (a voucher of the round); every
other person in the feed is taken to have tried and failed, so the feed should hold only people
who tried (grab logs, or the losers of a lottery). Extra columns are ignored.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from xfq.domain.errors import ReportInputError

COLUMNS = {"person_id": "VARCHAR", "day": "DATE", "spend_fen": "BIGINT"}
FEED_VIEW = "spending"


def attach_feed(db: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Make the feed readable as the view `spending`, or say what is wrong with it."""
    if not path.is_file():
        raise ReportInputError(f"spending feed {path}: no such file")
    reader = _reader(path)
    try:
        found = {
            str(row[0]).lower(): str(row[1])
            for row in db.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
        }
        missing = [c for c in COLUMNS if c not in found]
        if missing:
            raise ReportInputError(
                f"spending feed {path}: missing column(s) {', '.join(missing)}; "
                f"expected {', '.join(COLUMNS)}"
            )
        casts = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in COLUMNS.items())
        db.execute(f"CREATE OR REPLACE TEMP TABLE {FEED_VIEW} AS SELECT {casts} FROM {reader}")
    except duckdb.Error as error:
        raise ReportInputError(f"spending feed {path}: {_first_line(error)}") from None
    _check_rows(db, path)


def _reader(path: Path) -> str:
    literal = "'" + str(path).replace("'", "''") + "'"
    if path.suffix.lower() == ".parquet":
        return f"read_parquet({literal})"
    if path.suffix.lower() in (".csv", ".txt") or path.name.lower().endswith(".csv.gz"):
        return f"read_csv({literal}, header = true, all_varchar = true)"
    raise ReportInputError(f"spending feed {path}: expected a .csv or .parquet file")


def _check_rows(db: duckdb.DuckDBPyConnection, path: Path) -> None:
    bad = db.execute(
        f"SELECT person_id, day, spend_fen FROM {FEED_VIEW} "
        "WHERE person_id IS NULL OR day IS NULL OR spend_fen IS NULL OR spend_fen < 0 LIMIT 1"
    ).fetchone()
    if bad:
        raise ReportInputError(
            f"spending feed {path}: row (person_id={bad[0]!r}, day={bad[1]}, "
            f"spend_fen={bad[2]}) has an empty value or a negative spend_fen"
        )
    twice = db.execute(
        f"SELECT person_id, day FROM {FEED_VIEW} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if twice:
        raise ReportInputError(
            f"spending feed {path}: person_id={twice[0]!r} has two rows for day {twice[1]}"
        )


def _first_line(error: duckdb.Error) -> str:
    return str(error).strip().splitlines()[0]
