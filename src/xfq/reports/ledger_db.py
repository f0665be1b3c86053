"""A DuckDB connection with the ledger attached read-only as `ledger` (SQLite or PostgreSQL).

DuckDB reads SQLite and PostgreSQL through its scanner extensions. They are installed as Python
wheels (pinned to DuckDB's version in pyproject.toml) and loaded from those files; automatic
download and loading of extensions are switched off, so a report never reaches the network.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from xfq.adapters.sql.link import LinkBounds
from xfq.domain.errors import ReportInputError

_OFFLINE = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
# A city-scale round is copied into DuckDB (~200 MB per million vouchers): past this much memory
# DuckDB spills to files under the system's temp directory instead of growing further.
MEMORY_LIMIT = "1GB"
SPILL_DIR = Path(tempfile.gettempdir()) / "xfq-duckdb"


def extension_file(name: str) -> Path:
    """The extension binary shipped by the `duckdb-extension-<name>` wheel for this DuckDB."""
    module = importlib.import_module(f"duckdb_extension_{name}")
    assert module.__file__ is not None
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = path / f"{name}.duckdb_extension"
    if not found.is_file():
        raise ReportInputError(
            f"the DuckDB {name} extension for DuckDB {duckdb.__version__} is not installed "
            f"(expected {found}); reinstall xfq so pip picks the matching wheel"
        )
    return found


def connect(ledger: str) -> duckdb.DuckDBPyConnection:
    """Attach `ledger` (a SQLite file path, `sqlite:///path` or `postgresql://...`) as `ledger`."""
    config: dict[str, str | bool | int | float | list[str]] = dict(_OFFLINE)
    config["memory_limit"] = MEMORY_LIMIT
    config["temp_directory"] = str(SPILL_DIR)
    db = duckdb.connect(":memory:", config=config)
    try:
        db.execute("SET enable_progress_bar = false")
        db.execute("SET preserve_insertion_order = false")  # reports sort what they show
        _attach(db, ledger)
    except BaseException:
        db.close()
        raise
    return db


def _attach(db: duckdb.DuckDBPyConnection, ledger: str) -> None:
    scheme = urlsplit(ledger).scheme if "://" in ledger else ""
    if scheme.startswith("postgres"):
        db.execute(f"LOAD {_literal(str(extension_file('postgres_scanner')))}")
        # A SQLAlchemy "+driver" dropped; libpq's connect and TCP bounds added (no answer bound:
        # a report reads whole tables).
        dsn = LinkBounds().dsn("postgresql://" + ledger.split("://", 1)[1])
        db.execute(f"ATTACH {_literal(dsn)} AS ledger (TYPE postgres, READ_ONLY)")
        return
    if scheme and not scheme.startswith("sqlite"):
        raise ReportInputError(f"ledger {ledger!r}: expected a SQLite file or a postgresql:// URL")
    path = Path(ledger.split(":///", 1)[1]) if scheme else Path(ledger)
    if not path.is_file():
        raise ReportInputError(f"no ledger file at {path}")
    db.execute(f"LOAD {_literal(str(extension_file('sqlite_scanner')))}")
    db.execute(f"ATTACH {_literal(str(path))} AS ledger (TYPE sqlite, READ_ONLY)")


def _literal(text: str) -> str:
    """A SQL string literal (ATTACH and LOAD take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def has_table(db: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = db.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'ledger' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(found and found[0])
