"""The nemesis: injects one fault after another into a `Deployment` until told to stop.

Faults are taken round-robin from a shuffled list of every kind, so that a short run still hits
each kind; each is held `hold_s` (drawn per fault) and then healed, with a gap between faults.
While it waits, the nemesis plays the supervisor (`Deployment.supervise`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from faults.deployment import Deployment
from faults.proxy import FaultProxy

SUPERVISE_EVERY_S = 0.2
LINK_DELAY_S = 0.05


class NoTarget(Exception):
    """The process to hit is not running at the moment (being restarted)."""


@dataclass
class Nemesis:
    deployment: Deployment
    seed: int
    hold_s: tuple[float, float] = (0.4, 1.5)
    gap_s: tuple[float, float] = (0.3, 1.0)
    injected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # no target then (e.g. API restarting)
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (s, fault, note)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="nemesis")
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the nemesis did not stop"

    # --- the loop -------------------------------------------------------------------------

    def _faults(self) -> dict[str, Callable[[float], str]]:
        d = self.deployment
        assert d.redis_proxy is not None and d.postgres_proxy is not None
        return {
            "kill -9 API worker": self._kill_worker,
            "kill -9 API server": self._kill_api,
            "kill -9 persister": self._kill_persister,
            "kill -9 Redis": self._kill_redis,
            "kill -9 PostgreSQL": self._kill_postgres,
            "SIGSTOP Redis": lambda hold: self._pause(self._redis_pids(), hold),
            "SIGSTOP PostgreSQL": lambda hold: self._pause(d.postgres_pids(), hold),
            "SIGSTOP API worker": lambda hold: self._pause(d.worker_pids()[:1], hold),
            "SIGSTOP persister": lambda hold: self._pause(self._persister_pids(), hold),
            "delay Redis link": lambda hold: self._delay(d.redis_proxy, hold),
            "delay PostgreSQL link": lambda hold: self._delay(d.postgres_proxy, hold),
            "blackhole Redis link": lambda hold: self._blackhole(d.redis_proxy, hold),
            "blackhole PostgreSQL link": lambda hold: self._blackhole(d.postgres_proxy, hold),
            "reset Redis connections": lambda _hold: self._reset(d.redis_proxy),
            "reset PostgreSQL connections": lambda _hold: self._reset(d.postgres_proxy),
        }

    def _run(self) -> None:
        faults = self._faults()
        order: list[str] = []
        while not self._stop.is_set():
            if not order:
                order = sorted(faults)
                self._rng.shuffle(order)
            name = order.pop()
            at = round(time.monotonic() - self._started, 2)
            try:
                note = faults[name](self._rng.uniform(*self.hold_s))
                self.injected[name] += 1
            except NoTarget:
                self.skipped[name] += 1
                note = "skipped: no target"
            except Exception as error:  # a fault that could not be made is reported, not hidden
                self.errors.append(f"{name}: {error!r}")
                note = f"error: {error!r}"
            self.log.append((at, name, note))
            self._wait(self._rng.uniform(*self.gap_s))

    def _wait(self, seconds: float) -> None:
        """Sleep, restarting what exited meanwhile (systemd's Restart=always)."""
        deadline = time.monotonic() + seconds
        while True:
            self.deployment.supervise()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, SUPERVISE_EVERY_S))

    # --- the faults -----------------------------------------------------------------------

    def _kill_worker(self, _hold: float) -> str:
        workers = self.deployment.worker_pids()
        if not workers:
            raise NoTarget
        pid = self._rng.choice(workers)
        os.kill(pid, signal.SIGKILL)
        return f"pid {pid}"

    def _kill_api(self, _hold: float) -> str:
        if not self.deployment.kill_api():
            raise NoTarget
        return "the server and its workers; restarted by the supervisor"

    def _kill_persister(self, hold: float) -> str:
        if not self.deployment.kill_persister():
            raise NoTarget
        time.sleep(hold)  # the supervisor starts it again after the hold
        return f"down {hold:.1f} s"

    def _kill_redis(self, hold: float) -> str:
        redis = self.deployment.redis
        redis.kill()
        self._wait(hold)
        redis.start()  # the same data directory and port: it replays its append-only file
        return f"down {hold:.1f} s"

    def _kill_postgres(self, hold: float) -> str:
        postgres = self.deployment.postgres
        postgres.stop(kill=True)
        self._wait(hold)
        postgres.start()  # crash recovery from its WAL
        return f"down {hold:.1f} s"

    def _redis_pids(self) -> list[int]:
        process = self.deployment.redis.process
        return [] if process is None else [process.pid]

    def _persister_pids(self) -> list[int]:
        process = self.deployment.persister
        return [] if process is None or process.poll() is not None else [process.pid]

    def _pause(self, pids: list[int], hold: float) -> str:
        if not pids:
            raise NoTarget
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(hold)
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        return f"{len(pids)} process(es) for {hold:.1f} s"

    def _delay(self, proxy: FaultProxy | None, hold: float) -> str:
        assert proxy is not None
        proxy.set("delay", LINK_DELAY_S)
        try:
            time.sleep(hold)
        finally:
            proxy.set("pass")
        return f"{LINK_DELAY_S * 1000:.0f} ms a chunk for {hold:.1f} s"

    def _blackhole(self, proxy: FaultProxy | None, hold: float) -> str:
        assert proxy is not None
        proxy.set("blackhole")
        try:
            time.sleep(hold)
        finally:
            proxy.set("pass")
        return f"{hold:.1f} s"

    def _reset(self, proxy: FaultProxy | None) -> str:
        assert proxy is not None
        return f"{proxy.reset()} connection(s)"
