"""Bounds on the link to PostgreSQL, so that nothing waits forever on a server out of reach.

Three bounds, each for a way a server can be lost (libpq's connection parameters):
- `connect_timeout`: a connection that is not set up (TCP, startup, authentication) in time
  fails. psycopg enforces it per address tried, with libpq's minimum of 2 s.
- `keepalives*` and `tcp_user_timeout`: the kernel closes a connection whose sent data, or
  keepalive probes on an idle one, stay unacknowledged past the bound: a real partition, a host
  gone. Neither fires on a slow query, as the server's kernel acknowledges while it works.
- The answer bound (`BoundedConnection`): a server whose kernel still acknowledges but that does
  not answer (stopped, hung, or a proxy or middlebox on the way that forwards nothing) is seen by
  no TCP option. Serving processes wait this long for any answer, then close the connection: the
  call fails as the ledger being unavailable (503), and the pool replaces the connection.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import psycopg
import sqlalchemy as sa
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout  # what psycopg's own bounded waits raise

RV = TypeVar("RV")
WAIT_INTERVAL_S = 0.1  # psycopg's default: how often a wait looks for Ctrl-C
KEEPALIVE_INTERVAL_S = 1


@dataclass(frozen=True)
class LinkBounds:
    """How long a PostgreSQL connection may go without progress; `answer_timeout_s` None: no
    bound on a query's answer (a migration, a report over a whole ledger)."""

    connect_timeout_s: float = 5.0
    tcp_timeout_s: float = 5.0
    answer_timeout_s: float | None = None

    def __post_init__(self) -> None:
        assert self.connect_timeout_s > 0 and self.tcp_timeout_s > 0
        assert self.answer_timeout_s is None or self.answer_timeout_s > 0

    def libpq_params(self) -> dict[str, int]:
        """libpq's connection parameters for the connect and TCP bounds."""
        return {
            "connect_timeout": max(2, math.ceil(self.connect_timeout_s)),
            "keepalives": 1,
            # First probe after this long idle; with tcp_user_timeout set, Linux closes the
            # connection at the first probe past it, so the count matters only elsewhere.
            "keepalives_idle": max(1, math.ceil(self.tcp_timeout_s)),
            "keepalives_interval": KEEPALIVE_INTERVAL_S,
            "keepalives_count": 3,
            "tcp_user_timeout": math.ceil(self.tcp_timeout_s * 1000),
        }

    def dsn(self, url: str) -> str:
        """A `postgresql://` URL with these bounds added, for clients that take only a URL."""
        joiner = "&" if "?" in url else "?"
        return url + joiner + urlencode(self.libpq_params())


class BoundedConnection(psycopg.Connection[Any]):
    """psycopg's connection, waiting at most `answer_timeout_s` for each answer of the server.

    Every query, fetch, COPY and COMMIT of psycopg's connection and cursors waits in `wait`,
    which takes a timeout in psycopg 3.3 (pyproject.toml requires it; checked on 3.3.9).
    """

    answer_timeout_s: float | None = None

    def wait(
        self, gen: PQGen[RV], interval: float = WAIT_INTERVAL_S, timeout: float | None = None
    ) -> RV:
        bound = self.answer_timeout_s if timeout is None else timeout
        try:
            return super().wait(gen, interval=interval, timeout=bound)
        except _WaitTimeout:
            if timeout is not None:  # the caller's own bound: the caller handles it
                raise
            # Half a conversation is left on the wire: the connection cannot be used again.
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"no answer from the server in {bound:g} s: connection closed"
            ) from None


DoConnect = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], BoundedConnection]


def connect_bounded(bounds: LinkBounds) -> DoConnect:
    """A `do_connect` listener for SQLAlchemy that opens `BoundedConnection`s."""

    def connect(
        _dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> BoundedConnection:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.answer_timeout_s = bounds.answer_timeout_s
        return connection

    return connect


@contextlib.contextmanager
def unbounded_answers(connection: sa.Connection) -> Iterator[None]:
    """Lift the answer bound while inside (a migration may rewrite a large table)."""
    driver = connection.connection.driver_connection
    if not isinstance(driver, BoundedConnection):
        yield
        return
    saved, driver.answer_timeout_s = driver.answer_timeout_s, None
    try:
        yield
    finally:
        driver.answer_timeout_s = saved
