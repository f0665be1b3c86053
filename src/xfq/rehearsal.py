"""`xfq rehearse`: the reference round's opening second against a real deployment, measured.

By default it starts the deployment itself on loopback (a throwaway redis-server with
appendfsync always, `xfq serve --redis --workers N` on a SQLite ledger), signs a token for each
simulated citizen as the city's identity provider would, has every citizen's wallet exchange it
for a claim pass before the opening (in arrival order, as people open the grab page; "before" is
before the wave in real time), sends the wave over keep-alive connections with the passes (each
person's first wish on arrival, the next ones after an answer; double taps and spammers as in
the demo), then stops the servers and reconciles the ledger against Redis. `credential="bearer"`
claims with the bearer tokens instead. Bounded: at most `people` citizens, and the passes and
the wave are each cut after `bound_s`.

The servers' clock reads the round's opening at the real instant they are started and runs at
real speed from there, the same in every worker (XFQ_SIMULATED_ANCHOR): rate limits refill and
signed timestamps age as on the day. The round is open from the first request, and the wave
meets it as much after the opening as starting the servers and the passes took (printed).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from xfq.api.auth.tokens import Role
from xfq.demo_http import free_port
from xfq.domain.campaign import Round
from xfq.simulation.http_client import HttpPool
from xfq.simulation.over_http import DemoIdentityProvider
from xfq.simulation.population import SimCitizen, make_population
from xfq.spec import load_campaign

NEXT_WISH_S = 0.3
START_TIMEOUT_S = 90.0


@dataclass
class WaveFigures:
    people: int = 0
    requests: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # transport errors and 5xx
    latencies_s: list[float] = field(default_factory=list)
    sold_out_s: dict[str, float] = field(default_factory=dict)  # first sold_out per type
    began_at: datetime | None = None  # real time
    wave_s: float = 0.0
    cut: bool = False  # the bound stopped the wave before every person was answered

    def percentile_ms(self, p: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000


# --- tokens ------------------------------------------------------------------------------------


def _sign(args: tuple[str, datetime, list[tuple[str, str | None, bool]]]) -> list[str]:
    key_pem, now, people = args
    from pydantic import SecretStr

    idp = DemoIdentityProvider(environment="development", private_key_pem=SecretStr(key_pem))
    return [
        idp.token(p, Role.CITIZEN, now, ttl=timedelta(days=30), residency=r, in_city=c)
        for p, r, c in people
    ]


def sign_tokens(idp: DemoIdentityProvider, people: list[SimCitizen], now: datetime) -> list[str]:
    """One token per person, signed on every core (Ed25519 costs ~0.1 ms a token here)."""
    rows = [
        (
            p.citizen.person_id,
            p.citizen.residency.value if p.citizen.residency else None,
            p.citizen.in_city,
        )
        for p in people
    ]
    step = 20_000
    chunks = [(idp.private_key_pem(), now, rows[i : i + step]) for i in range(0, len(rows), step)]
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:
        return [t for chunk in pool.map(_sign, chunks) for t in chunk]


# --- claim passes before the opening ------------------------------------------------------------


@dataclass
class PassFigures:
    fetched: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # HTTP statuses other than 200
    errors: int = 0  # transport errors
    took_s: float = 0.0
    cut: bool = False


async def fetch_passes(
    pool: HttpPool, round_id: str, order: list[int], tokens: list[str], bound_s: float
) -> tuple[dict[int, str], PassFigures]:
    """Each person's claim pass, asked for in `order` over the pool's connections."""
    figures, passes = PassFigures(), {}
    start = time.perf_counter()
    queue = iter(order)

    async def wallet() -> None:
        for i in queue:
            if time.perf_counter() - start > bound_s:
                figures.cut = True
                return
            headers = {"Authorization": f"Bearer {tokens[i]}"}
            try:
                reply = await pool.request("POST", f"/v1/rounds/{round_id}/pass", headers)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                figures.errors += 1
                continue
            if reply.status != 200:
                figures.refused[reply.status] += 1
                continue
            passes[i] = str(reply.json()["token"])
            figures.fetched += 1

    await asyncio.gather(*(wallet() for _ in range(pool.size)))
    figures.took_s = time.perf_counter() - start
    return passes, figures


def credentials(tokens: list[str], passes: dict[int, str]) -> list[dict[str, str]]:
    """The header each person claims with: their pass, or their bearer token lacking one."""
    return [
        {"Claim-Pass": passes[i]} if i in passes else {"Authorization": f"Bearer {token}"}
        for i, token in enumerate(tokens)
    ]


# --- the wave ----------------------------------------------------------------------------------


class Wave:
    """Sends each person's claims when due, over a fixed pool of keep-alive connections."""

    def __init__(
        self, pool: HttpPool, people: list[SimCitizen], credentials: list[dict[str, str]]
    ) -> None:
        self.pool = pool
        self.people = people
        self.credentials = credentials
        self.figures = WaveFigures(people=len(people))
        self._start = 0.0

    async def run(
        self, bound_s: float, concurrency: int, arrival_scale: float = 1.0
    ) -> WaveFigures:
        """`arrival_scale` < 1 compresses the arrivals (most within seconds of the opening)."""
        self._start = time.perf_counter()
        self.figures.began_at = datetime.now(UTC)
        due = [(p.arrival_ms / 1000 * arrival_scale, i, 0) for i, p in enumerate(self.people)]
        heapq.heapify(due)
        running: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(concurrency)
        while due or running:
            elapsed = time.perf_counter() - self._start
            if elapsed > bound_s:
                self.figures.cut = True
                break
            if due and due[0][0] <= elapsed:
                _at, i, wish = heapq.heappop(due)
                await slots.acquire()
                task = asyncio.create_task(self._person(i, wish, due, slots))
                running.add(task)
                task.add_done_callback(running.discard)
                continue
            wait_s = max(0.0, min(due[0][0] - elapsed, 0.01)) if due else 0.01
            await asyncio.sleep(wait_s)
        for task in running:
            task.cancel()
        self.figures.wave_s = time.perf_counter() - self._start
        return self.figures

    async def _person(
        self, i: int, wish: int, due: list[tuple[float, int, int]], slots: asyncio.Semaphore
    ) -> None:
        try:
            code = await self._attempt(i, wish)
        finally:
            slots.release()
        person = self.people[i]
        if code not in ("not_eligible", "") and wish + 1 < len(person.wishes):
            at = time.perf_counter() - self._start + NEXT_WISH_S
            heapq.heappush(due, (at, i, wish + 1))

    async def _attempt(self, i: int, wish: int) -> str:
        person = self.people[i]
        type_id = person.wishes[wish]
        key = f"{person.citizen.person_id}-{wish}"
        keys = [key] * (2 if person.double_tap else 1)
        if person.spammer:
            keys += [f"{key}-x{n}" for n in range(3)]
        first = ""
        for k in keys:
            code = await self._send(i, type_id, k)
            first = first or code
        return first

    async def _send(self, i: int, type_id: str, key: str) -> str:
        headers = {**self.credentials[i], "Idempotency-Key": key}
        sent = time.perf_counter()
        f = self.figures
        f.requests += 1
        try:
            reply = await self.pool.request("POST", "/v1/claims", headers, {"type_id": type_id})
        except (OSError, ValueError, asyncio.IncompleteReadError):
            f.errors += 1
            return ""
        f.latencies_s.append(time.perf_counter() - sent)
        f.statuses[reply.status] += 1
        if reply.status >= 500:
            f.errors += 1
        code = str(json.loads(reply.body).get("code", reply.status))
        f.answers[code] += 1
        if code == "sold_out" and type_id not in f.sold_out_s:
            f.sold_out_s[type_id] = sent - self._start
        return code


# --- the deployment ----------------------------------------------------------------------------


def redis_command(port: int, data: Path) -> list[str]:
    """A loopback redis-server that writes every command to disk before answering."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "always", "--save", ""]  # fmt: skip


@dataclass
class Deployment:
    base_port: int
    ledger: Path
    redis_url: str
    processes: list[subprocess.Popen[bytes]]
    clock_anchor: datetime  # the real instant at which the servers' clock read the opening


@contextmanager
def loopback_deployment(
    workdir: Path, spec: Path, idp: DemoIdentityProvider, opens_at: datetime, workers: int
) -> Iterator[Deployment]:
    """redis-server (appendfsync always) and `xfq serve --redis --workers N`, stopped after."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    redis_port, port = free_port(), free_port()
    data = workdir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    redis = subprocess.Popen(redis_command(redis_port, data), stdout=subprocess.DEVNULL)
    trusted = idp.trusted()
    anchor = datetime.now(UTC)
    env = {
        **os.environ,
        "XFQ_ISSUERS": json.dumps(
            [{"issuer": trusted.issuer, "public_key_pem": trusted.public_key_pem}]
        ),
        "XFQ_SIMULATED_START": opens_at.isoformat(),
        "XFQ_SIMULATED_ANCHOR": anchor.isoformat(),
        # Everyone comes from 127.0.0.1 here; per-person limits stay as configured.
        "XFQ_CLAIM_RATE_PER_ADDRESS_PER_S": "100000000",
        "XFQ_CLAIM_BURST_PER_ADDRESS": "100000000",
    }
    ledger = workdir / "ledger.db"
    url = f"redis://127.0.0.1:{redis_port}/0"
    command = [sys.executable, "-m", "xfq", "serve", "--spec", str(spec), "--ledger", str(ledger),
               "--port", str(port), "--redis", url, "--workers", str(workers),
               "--server", "granian"]  # fmt: skip
    log = (workdir / "server.log").open("ab")  # the servers' JSON log lines, kept for reading
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_healthy(server, port, workers)
        yield Deployment(port, ledger, url, [server, redis], anchor)
    finally:
        for process in (server, redis):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        log.close()


def wait_healthy(server: subprocess.Popen[bytes], port: int, workers: int = 1) -> None:
    """Until /health has answered 200 from `workers` distinct processes.

    Each worker joins the port's SO_REUSEPORT group only once its app is built: keep-alive
    connections opened when the first one answers would all stay with that one worker."""
    import urllib.request

    seen: set[int] = set()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"xfq serve exited with code {server.returncode}")
        try:  # a new connection each time, so the kernel may hand it to any worker
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    seen.add(json.loads(r.read())["process"])
                    if len(seen) >= workers:
                        return
                    continue
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"xfq serve did not become healthy on port {port} ({len(seen)} of {workers} workers)"
    )


class ProcessFigures(NamedTuple):
    peak_mb: float  # VmHWM: the most resident memory the process ever had
    cpu_s: float  # user + system CPU seconds so far


def process_figures(root_pid: int) -> dict[int, ProcessFigures]:
    """Peak memory and CPU time of a process and its descendants, from /proc. The CPU seconds
    show whether every worker served: one that got no connection has spent only its start."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, ProcessFigures] = {}
    todo = [root_pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu_s = (int(stat[11]) + int(stat[12])) / tick
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                found[pid] = ProcessFigures(int(line.split()[1]) / 1024, cpu_s)
    return found


# --- the whole rehearsal ------------------------------------------------------------------------


@dataclass
class Rehearsal:
    wave: WaveFigures
    passes: PassFigures | None  # None: the wave claimed with bearer tokens
    processes: dict[int, ProcessFigures]  # the server and its workers
    reconcile_ok: bool
    reconcile_report: str
    stock: int
    types: int  # voucher types of the round
    opens_at: datetime
    wave_clock: datetime  # the servers' clock when the wave began


def rehearse(
    spec: Path,
    round_id: str,
    people_count: int,
    workers: int,
    connections: int,
    bound_s: float,
    workdir: Path,
    seed: int,
    say: object = print,
    arrival_scale: float = 1.0,
    credential: str = "pass",
) -> Rehearsal:
    campaign = load_campaign(spec)
    rnd: Round = campaign.round(round_id)
    people = make_population(rnd, people_count, seed)
    idp = DemoIdentityProvider(environment="development")
    tell = say if callable(say) else print
    tell(f"signing {len(people):,} citizens' tokens …")
    tokens = sign_tokens(idp, people, rnd.opens_at - timedelta(hours=1))
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    with loopback_deployment(workdir, spec, idp, rnd.opens_at, workers) as deployment:
        opening = _Opening(people, tokens, connections, bound_s, arrival_scale)
        passes, wave = asyncio.run(
            opening.run(deployment.base_port, round_id if credential == "pass" else None, tell)
        )
        processes = process_figures(deployment.processes[0].pid)
    ok, report = _reconcile(deployment)
    stock = sum(t.count for t in rnd.types)
    assert wave.began_at is not None, "the wave always runs"
    wave_clock = rnd.opens_at + (wave.began_at - deployment.clock_anchor)
    return Rehearsal(
        wave, passes, processes, ok, report, stock, len(rnd.types), rnd.opens_at, wave_clock
    )


@dataclass
class _Opening:
    people: list[SimCitizen]
    tokens: list[str]
    connections: int
    bound_s: float
    arrival_scale: float

    async def run(
        self, port: int, pass_round: str | None, tell: Callable[[str], object]
    ) -> tuple[PassFigures | None, WaveFigures]:
        """Passes first (when `pass_round` is given), then the wave, over one pool."""
        pool = HttpPool("127.0.0.1", port, self.connections)
        await pool.open()
        try:
            passes: dict[int, str] = {}
            figures = None
            if pass_round is not None:
                tell(f"claim passes for {len(self.people):,} citizens before the opening …")
                order = sorted(range(len(self.people)), key=lambda i: self.people[i].arrival_ms)
                passes, figures = await fetch_passes(
                    pool, pass_round, order, self.tokens, self.bound_s
                )
            tell(f"the wave: {len(self.people):,} citizens over {self.connections} connections …")
            wave = Wave(pool, self.people, credentials(self.tokens, passes))
            return figures, await wave.run(self.bound_s, self.connections, self.arrival_scale)
        finally:
            await pool.close()


def _reconcile(deployment: Deployment) -> tuple[bool, str]:
    """Move what the persisters had not yet, then check every invariant, Redis included.

    Redis was stopped with the servers; it is started again on its data to be checked."""
    data = deployment.ledger.parent / "redis"
    port = int(deployment.redis_url.rsplit(":", 1)[1].split("/")[0])
    redis = subprocess.Popen(redis_command(port, data), stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        base = [sys.executable, "-m", "xfq", "reconcile", str(deployment.ledger)]
        base += ["--redis", deployment.redis_url]
        subprocess.run([*base, "--repair"], capture_output=True, check=False)
        done = subprocess.run(base, capture_output=True, text=True, check=False)
        return done.returncode == 0, done.stdout + done.stderr
    finally:
        redis.send_signal(signal.SIGINT)
        redis.wait(timeout=30)
