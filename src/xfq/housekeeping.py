"""Scheduled money jobs of a running server, by its injected clock: expire vouchers whose
validity has ended, roll finished rounds over when the policy says so, and give the claim engine
any rolled-over stock it has not received (Redis was away when the rollover was recorded).
A rollover whose round still has claims the Redis persister has not moved waits for a later pass.

Polling rather than sleeping until the next deadline: a simulated clock can jump, and each pass
is one indexed query when nothing is due.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.bootstrap import Container, NoCampaign
from xfq.domain.errors import StorageUnavailable
from xfq.services.expiry import expire
from xfq.services.rollover import ClaimsNotPersisted, RolloverResult, due_rollovers, roll_over

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pass:
    expired: int
    rolled_over: tuple[str, ...]  # rounds rolled over in this pass
    late_stock: int = 0  # rolled-over vouchers the engine received only now (a retry)
    waiting: tuple[str, ...] = ()  # why due rollovers wait (claims not persisted yet)


def apply_rollover(container: Container, round_id: str) -> RolloverResult:
    """Roll over and give the running claim engine the new stock. Run again, it gives the stock
    only if the engine has not received it: the ledger records the rollover first, and a Redis
    away at that moment is given it by the next call or pass. Refused (`ClaimsNotPersisted`)
    while the engine has issued claims of the round that the ledger does not hold yet."""
    campaign, engine = container.running()
    store = SqlRolloverStore(container.ledger.engine)
    now = container.clock.now()
    result = roll_over(store, container.ledger, campaign, round_id, now, engine.unpersisted)
    engine.top_up(result.moves)
    return result


def run_pass(container: Container) -> Pass:
    try:
        campaign, _ = container.running()
    except NoCampaign:
        return Pass(0, ())
    now = container.clock.now()
    expired = expire(container.ledger, now).result()
    store = SqlRolloverStore(container.ledger.engine)
    rolled, waiting = [], []
    for round_id in due_rollovers(campaign, store, now):
        try:
            rolled.append(apply_rollover(container, round_id).from_round)
        except ClaimsNotPersisted as error:  # the next pass asks again
            waiting.append(str(error))
    late = container.running()[1].top_up(store.moves())  # one read when Redis has them all
    return Pass(expired, tuple(rolled), late, tuple(waiting))


class Housekeeper:
    """A daemon thread running `run_pass` every `interval_s` seconds until stopped."""

    def __init__(self, container: Container, interval_s: float = 5.0) -> None:
        assert interval_s > 0, interval_s
        self._container = container
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xfq-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        away: str | None = None  # the storage failure logged, until a pass succeeds
        waiting: tuple[str, ...] = ()  # the rollovers waiting for the persister, logged
        while not self._stop.wait(self._interval_s):
            try:
                done = run_pass(self._container)
            except StorageUnavailable as error:  # retried on the next pass, logged once
                if away is None:
                    log.warning("housekeeping waits for its storage, retrying: %s", error)
                away = str(error)
                continue
            except Exception:  # a failed pass is retried on the next one; the server stays up
                log.exception("housekeeping pass failed")
                continue
            if away is not None:
                log.warning("housekeeping resumed (storage back: %s)", away)
                away = None
            if done.waiting != waiting:  # a line when it changes, not one per pass for days
                waiting = done.waiting
                for why in waiting:
                    log.warning("housekeeping: %s", why)
            if done.expired or done.rolled_over or done.late_stock:
                log.warning(
                    "housekeeping: expired %d voucher(s), rolled over %s, "
                    "%d rolled-over voucher(s) given to the claim engine late",
                    done.expired,
                    ", ".join(done.rolled_over) or "nothing",
                    done.late_stock,
                )
