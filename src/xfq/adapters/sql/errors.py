"""Database errors of either driver as the one error tree of `xfq.domain.errors`.

A unique key hit by a concurrent writer is a conflict the caller may retry; a lost connection,
a server restarting, a lock or serialization failure means nothing was decided: try again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import psycopg
import sqlalchemy as sa

from xfq.domain.errors import StorageUnavailable, XfqError


class StorageConflict(XfqError):
    """A write collided with one another process made meanwhile (a unique key)."""

    code = "storage_conflict"


_CONFLICT = (sqlite3.IntegrityError, psycopg.IntegrityError)
_UNAVAILABLE = (
    sqlite3.OperationalError,
    psycopg.OperationalError,  # includes serialization failures and deadlocks (SQLSTATE 40)
    psycopg.InterfaceError,
)


# Every error a database call can raise: what `translate` reads
DATABASE_ERRORS = (sa.exc.SQLAlchemyError, sqlite3.Error, psycopg.Error)


def translate(error: BaseException) -> XfqError | None:
    """The domain error for a driver's (or SQLAlchemy's) database error; None if not one."""
    if isinstance(error, XfqError):
        return error
    if isinstance(error, sa.exc.DBAPIError) and error.orig is not None:
        error = error.orig
    elif isinstance(error, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return StorageUnavailable(f"the ledger is unavailable: {error}")
    if isinstance(error, _CONFLICT):
        return StorageConflict(f"another write got there first: {_first_line(error)}")
    if isinstance(error, _UNAVAILABLE):
        return StorageUnavailable(f"the ledger is unavailable: {_first_line(error)}")
    return None


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Raise database errors inside as their domain errors."""
    try:
        yield
    except Exception as error:
        mapped = translate(error)
        if mapped is None or mapped is error:
            raise
        raise mapped from error


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
