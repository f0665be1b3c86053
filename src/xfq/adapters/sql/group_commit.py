"""One writer thread that commits queued units of work in batches: one fsync for many answers.

Each unit runs inside a savepoint, so one failing unit does not undo the others of its batch.
A unit's future resolves only after the batch's COMMIT returned: what it answers is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from xfq.domain.errors import StorageUnavailable

log = logging.getLogger(__name__)

Unit = Callable[[Any], Any]
_STOP = object()


class TxControl:
    """Transaction statements that differ between drivers."""

    def __init__(self, dialect_name: str) -> None:
        self.sqlite = dialect_name == "sqlite"

    def begin(self, connection: Any) -> None:
        if self.sqlite:  # psycopg begins implicitly
            connection.cursor().execute("BEGIN IMMEDIATE")

    def commit(self, connection: Any) -> None:
        if self.sqlite:
            connection.cursor().execute("COMMIT")
        else:
            connection.commit()

    def rollback(self, connection: Any) -> None:
        try:
            if self.sqlite:
                connection.cursor().execute("ROLLBACK")
            else:
                connection.rollback()
        except Exception:  # the connection may already be gone; nothing else to undo
            log.exception("rollback failed")


class GroupCommitWriter:
    def __init__(
        self,
        connect: Callable[[], Any],
        make_tx: Callable[[Any], Any],
        control: TxControl,
        max_batch: int = 1024,
        max_queued: int = 100_000,
    ) -> None:
        self._connect = connect
        self._make_tx = make_tx
        self._control = control
        self._max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="xfq-group-commit", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, unit: Unit) -> Future[Any]:
        if self._closed:
            raise StorageUnavailable("the ledger writer is closed")
        future: Future[Any] = Future()
        self._queue.put((unit, future))
        return future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        connection = self._connect()
        try:
            while (batch := self._next_batch()) is not None:
                self._commit(connection, batch)
        finally:
            connection.close()

    def _next_batch(self) -> list[tuple[Unit, Future[Any]]] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # finish this batch, stop at the next
                break
            batch.append(item)
        return batch

    def _commit(self, connection: Any, batch: list[tuple[Unit, Future[Any]]]) -> None:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        try:
            self._control.begin(connection)
            tx = self._make_tx(connection)
            cursor = connection.cursor()
            for unit, future in batch:
                outcomes.append((future, *self._run_unit(cursor, tx, unit)))
            self._control.commit(connection)
        except Exception as error:
            log.exception("ledger batch of %d failed", len(batch))
            self._control.rollback(connection)
            failure = StorageUnavailable(f"the ledger could not commit: {error}")
            for _, future in batch:
                future.set_exception(failure)
            return
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    @staticmethod
    def _run_unit(cursor: Any, tx: Any, unit: Unit) -> tuple[bool, Any]:
        cursor.execute("SAVEPOINT unit")
        try:
            value = unit(tx)
        except Exception as error:
            cursor.execute("ROLLBACK TO SAVEPOINT unit")
            cursor.execute("RELEASE SAVEPOINT unit")
            return False, error
        cursor.execute("RELEASE SAVEPOINT unit")
        return True, value
