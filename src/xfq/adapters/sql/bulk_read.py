"""Bulk reads on the driver's own cursor: whole tables for scans and reconciliation."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

Row = tuple[Any, ...]


def driver_rows(source: sa.Engine | sa.Connection, sql: str) -> list[Row]:
    """Every row of a parameterless query as plain tuples. For 100,000 rows SQLAlchemy's Row
    objects cost several times the query itself."""
    if isinstance(source, sa.Engine):
        with source.connect() as c:
            return driver_rows(c, sql)
    cursor = source.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        rows = cast(list[Row], cursor.fetchall())  # tuples on both sqlite3 and psycopg
    finally:
        cursor.close()
    return rows
