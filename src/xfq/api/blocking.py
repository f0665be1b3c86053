"""Where request handlers' blocking calls run: on threads, never on a worker's event loop.

One event loop answers every request of a worker process, claims included. A handler that waits
there on the ledger (PostgreSQL: up to the 5 s answer bound of `adapters/sql/link.py` while the
link is cut, and one request can meet several bounds) holds up every request of the process for
as long. Handlers await these instead:

- `on_ledger`: the ledger's threads, `XFQ_LEDGER_THREADS` of them (8 by default) for the life
  of the process. Not anyio's pool (40 threads, each ending after 10 s idle): `SqlLedger.reader`
  keeps a connection per thread for good, taken from the engine's pool of 32, so 40 reading
  threads would empty that pool, and a thread that ended would leave its connection taken.
  While the link is cut, at most this many requests of a process wait on it; the others queue
  here for a thread, off the loop, and one that got none within `XFQ_LEDGER_WAIT_S` is
  answered 503 (`LedgerThreads`).
- `one_at_a_time`: one thread, for the fair-issuance handlers (lottery, households), which
  decide on what they read and relied on running whole on the event loop, one at a time.
- `stock`: the Redis engine's stock is a Redis round trip, made on anyio's pool: it holds no
  ledger connection, and a cut Redis link then holds up no ledger thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.domain.errors import StorageUnavailable
from xfq.ports import LedgerReader

if TYPE_CHECKING:
    from xfq.bootstrap import Container, Engine

T = TypeVar("T")
P = ParamSpec("P")


class LedgerThreads:
    """The ledger's threads, and how long a call may wait for one of them.

    While the link is cut each call holds its thread for the link's bounds (5 s, or 10 s when
    the pool checks a connection, then opens a new one), so a call behind k others would start
    only after ceil(k / threads) of them. A call that has not started within `max_wait_s` is
    dropped and answered 503 with Retry-After (nothing written) rather than after its client
    gave up. A bound on the wait, not on the count: a burst on a healthy link, whose calls take
    milliseconds, is never refused.
    """

    def __init__(self, threads: int, max_wait_s: float) -> None:
        assert threads >= 1 and max_wait_s > 0, (threads, max_wait_s)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="xfq-ledger")
        self.max_wait_s = max_wait_s

    async def run(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`call` on a thread; StorageUnavailable when no thread took it within the bound."""
        future = self.pool.submit(call, *args, **kwargs)
        dropped: list[bool] = []
        timer = asyncio.get_running_loop().call_later(
            self.max_wait_s,
            lambda: dropped.append(future.cancel()),  # False once it started
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if dropped and dropped[0]:  # the timer's doing, not the request's cancellation
                raise StorageUnavailable(
                    f"the ledger is slow or out of reach: no thread of this process was free "
                    f"for this call within {self.max_wait_s:g} s"
                ) from None
            raise
        finally:
            timer.cancel()


class HandlerThreads:
    """The threads of `on_ledger` and `one_at_a_time`, started as needed, ended by `close`."""

    def __init__(self, ledger_threads: int, ledger_wait_s: float) -> None:
        self.ledger = LedgerThreads(ledger_threads, ledger_wait_s)
        self.serial = ThreadPoolExecutor(1, thread_name_prefix="xfq-serial")

    def close(self) -> None:
        """Drop the calls not started; wait for the running ones (each within the link's
        bounds), so that none uses the ledger after it is closed."""
        for pool in (self.ledger.pool, self.serial):
            pool.shutdown(wait=True, cancel_futures=True)


async def on_ledger(
    container: Container, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`call(*args, **kwargs)` on one of the ledger's threads; StorageUnavailable when none
    was free for it within `XFQ_LEDGER_WAIT_S` (`LedgerThreads`)."""
    return await container.threads.ledger.run(call, *args, **kwargs)


async def read_ledger(
    container: Container,
    call: Callable[Concatenate[LedgerReader, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`call(reader, *args, **kwargs)` on a ledger thread, with that thread's reader (taken
    there: `SqlLedger.reader()` is per thread)."""

    def run() -> T:
        return call(container.ledger.reader(), *args, **kwargs)

    return await on_ledger(container, run)


async def one_at_a_time(
    container: Container, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`call(*args, **kwargs)` on the one thread that runs such calls in order."""
    return await asyncio.wrap_future(container.threads.serial.submit(call, *args, **kwargs))


async def stock(engine: Engine) -> dict[str, int]:
    """The engine's remaining stock by type: from memory, or a Redis round trip off the loop."""
    if isinstance(engine, EmbeddedClaimEngine):
        return engine.stock()
    return await run_in_threadpool(engine.stock)
