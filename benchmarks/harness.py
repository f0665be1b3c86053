"""What every benchmark here needs: free ports, servers started and stopped by PID, wrk runs
parsed, citizens' bearer tokens signed by the benchmark's own identity provider."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from xfq.rehearsal import redis_command, wait_healthy
from xfq.simulation.http_client import HttpPool

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
ISSUER = "xfq-bench-idp"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(process: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"{what} did not listen on port {port} within {START_TIMEOUT_S:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (a server's clean shutdown), then SIGKILL after 15 s; only our own child."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def server(
    command: Sequence[str],
    port: int,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    workers: int = 0,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server started and stopped by PID; with `workers`, an xfq server whose /health has
    answered from that many worker processes (else wrk's connections may all go to one)."""
    CACHE.mkdir(exist_ok=True)
    log = (CACHE / f"server-{port}.log").open("wb")  # the servers' own logs, out of the table
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=cwd,
    )
    try:
        wait_listening(process, port, what)
        if workers:
            wait_healthy(process, port, workers)
        yield process
    finally:
        stop(process)
        log.close()


# --- the benchmark's identity provider -------------------------------------------------------


def _key() -> Ed25519PrivateKey:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / "idp-key.pem"
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
        path.write_bytes(pem)
    key = load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def issuers_env() -> str:
    """XFQ_ISSUERS for a server that trusts the benchmark's citizens and operators."""
    public = _key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return json.dumps([{"issuer": ISSUER, "public_key_pem": public.decode()}])


def _sign(args: tuple[int, int, str]) -> list[str]:
    start, stop_, role = args
    key = _key()
    now = datetime.now(UTC)
    # Issued now, valid for a year: the servers' clocks stand at the round's opening in 2022
    # or run in real time; both accept a token whose iat is not in their future by much.
    iat = int(datetime(2022, 3, 1, tzinfo=UTC).timestamp())
    exp = int((now + timedelta(days=365)).timestamp())
    return [
        jwt.encode(
            {
                "iss": ISSUER,
                "aud": "xfq",
                "sub": f"b{i:08d}",
                "role": role,
                "iat": iat,
                "exp": exp,
                "in_city": True,
                "residency": "permanent",
            },
            key,
            algorithm="EdDSA",
        )
        for i in range(start, stop_)
    ]


def tokens_file(people: int, role: str = "citizen") -> Path:
    """A file of `people` bearer tokens, one a line, made once and kept in benchmarks/.cache."""
    path = CACHE / f"tokens-{role}-{people}.txt"
    if path.exists():
        return path
    _key()
    step = 20_000
    chunks = [(s, min(s + step, people), role) for s in range(0, people, step)]
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:
        lines = [t for chunk in pool.map(_sign, chunks) for t in chunk]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="ascii")
    tmp.rename(path)
    return path


# --- claim passes ----------------------------------------------------------------------------


def pass_key_env() -> dict[str, str]:
    """XFQ_CLAIM_PASS_KEYS for the servers: one key kept in benchmarks/.cache, so passes got
    from one server hold in the next (their clocks all stand at the same opening)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / "claim-pass-key.txt"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32), encoding="ascii")
    return {"XFQ_CLAIM_PASS_KEYS": json.dumps([path.read_text(encoding="ascii")])}


def passes_file(port: int, round_id: str, people: int, tokens: Path) -> Path:
    """A claim pass for each of the first `people` tokens, one a line, got from the server at
    `port` as wallets would before the opening (`POST /v1/rounds/{round}/pass` with the bearer
    token), outside any timed run; kept in benchmarks/.cache for later runs."""
    path = CACHE / f"passes-{round_id}-{people}.txt"
    if path.exists():
        return path
    with tokens.open(encoding="ascii") as lines:
        bearer = [next(lines).strip() for _ in range(people)]
    started = time.perf_counter()
    got = asyncio.run(_fetch_passes(port, round_id, bearer))
    took_s = time.perf_counter() - started
    print(f"  {people:,} claim passes fetched in {took_s:.1f} s ({people / took_s:,.0f}/s)")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(got) + "\n", encoding="ascii")
    tmp.rename(path)
    return path


async def _fetch_passes(port: int, round_id: str, bearer: list[str]) -> list[str]:
    pool = HttpPool("127.0.0.1", port, 64)
    await pool.open()
    got = [""] * len(bearer)

    async def fetch(worker: int) -> None:
        for i in range(worker, len(bearer), 64):
            headers = {"Authorization": f"Bearer {bearer[i]}"}
            reply = await pool.request("POST", f"/v1/rounds/{round_id}/pass", headers)
            if reply.status != 200:
                raise RuntimeError(f"no claim pass: {reply.status} {reply.body[:300]!r}")
            got[i] = reply.json()["token"]

    try:
        await asyncio.gather(*(fetch(w) for w in range(64)))
    finally:
        await pool.close()
    return got


# --- wrk ------------------------------------------------------------------------------------


@dataclass
class Load:
    """One wrk run: throughput, latency, answers by code, errors."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    codes: dict[str, int] = field(default_factory=dict)
    socket_errors: int = 0
    non_2xx: int = 0
    notes: list[str] = field(default_factory=list)
    # CPU µs per answer during the run, by kind of process (this process's descendants and
    # wrk): where the machine's time went, beside the req/s it bought
    cpu_us: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        """Answers a citizen would see as a failure: transport errors and 5xx."""
        server_errors = sum(n for code, n in self.codes.items() if code.startswith("5"))
        return self.socket_errors + server_errors


def wrk(
    name: str,
    port: int,
    path: str,
    seconds: float,
    connections: int,
    env: dict[str, str],
    script: Path = HERE / "claim.lua",
) -> Load:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    before, children = cpu_by_kind(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    after, reaped = cpu_by_kind(), resource.getrusage(resource.RUSAGE_CHILDREN)
    load = parse_wrk(name, done.stdout)
    answers = sum(load.codes.values())
    if answers:
        spent = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
        # wrk has ended and been reaped: its CPU is in this process's children's usage
        spent["wrk"] = (reaped.ru_utime + reaped.ru_stime) - (children.ru_utime + children.ru_stime)
        load.cpu_us = {k: s / answers * 1e6 for k, s in sorted(spent.items()) if s > 0}
    return load


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds so far of this process's descendants still running, by kind: "xfq persist",
    "API" (the server's parent and workers, or a hello-world's), "redis-server", "postgres"."""
    parents: dict[int, int] = {}
    times: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        fields = stat.rpartition(")")[2].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (_kind(argv), (int(fields[11]) + int(fields[12])) * _TICK_S)
    mine: set[int] = {os.getpid()}
    spent: dict[str, float] = {}
    while found := {pid for pid, parent in parents.items() if parent in mine} - mine:
        mine |= found  # a generation of descendants at a time
    for pid in mine - {os.getpid()}:
        kind, seconds = times.get(pid, ("", 0.0))
        if kind:
            spent[kind] = spent.get(kind, 0.0) + seconds
    return spent


def _kind(argv: list[bytes]) -> str:
    text = b" ".join(argv).decode(errors="replace")
    for kind in ("redis-server", "postgres", "wrk"):
        if kind in text.split(" ")[0]:
            return kind
    if " persist" in text:
        return "xfq persist"
    if "python" in text.split(" ")[0] or "granian" in text:
        return "API"
    return "other"


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark of runs side by side takes."""
    parser = argparse.ArgumentParser(description=doc.split("\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each timed run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", default="", help="comma-separated run names")
    return parser


def print_loads(loads: dict[str, Load], connections: int, seconds: float, warmup_s: float) -> None:
    """The table of a run: req/s, p50, p99, errors, answers by code and notes, one a line."""
    width = max([22, *(len(load.name) for load in loads.values())])
    print(f"\nwrk -t1 -c{connections}, {seconds:g} s per run after {warmup_s:g} s warm-up")
    print(
        f"{'run':<{width}} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  answers / notes"
    )
    for load in loads.values():
        codes = ", ".join(f"{k} {v}" for k, v in sorted(load.codes.items()))
        print(
            f"{load.name:<{width}} {load.rps:>9.0f} {load.p50_ms:>8.2f} {load.p99_ms:>8.2f} "
            f"{load.errors:>7}  {codes}; {'; '.join(load.notes)}"
        )
    print("\nCPU µs per answer, by process (the machine has 2e6 µs a second: 2 cores)")
    for load in loads.values():
        if load.cpu_us:
            parts = ", ".join(f"{kind} {us:.0f}" for kind, us in load.cpu_us.items())
            print(f"  {load.name:<{width}} {sum(load.cpu_us.values()):>5.0f} = {parts}")


def print_errors(loads: dict[str, Load]) -> None:
    errors = [load.name for load in loads.values() if load.errors]
    if errors:
        print(f"\nerrors (5xx or transport) in: {', '.join(errors)}")


def parse_wrk(name: str, out: str) -> Load:
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    latency = re.search(r"XFQ_LATENCY_US p50=(\d+) p99=(\d+)", out)
    assert latency, out
    codes = json.loads(_find(r"XFQ_CODES (\{.*\})", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(
        name,
        rps,
        int(latency.group(1)) / 1000,
        int(latency.group(2)) / 1000,
        codes,
        sum(int(g) for g in errors.groups()) if errors else 0,
        int(non_2xx.group(1)) if non_2xx else 0,
    )


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"wrk printed no {pattern!r}:\n{text}")
    return found.group(1)


def python() -> str:
    return sys.executable


# --- Redis -------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[int, str]]:
    """A throwaway redis-server with appendfsync always: an acknowledged claim is on disk."""
    port = free_port()
    data = workdir / f"redis-{port}"
    data.mkdir()
    with server(redis_command(port, data), port, "redis-server"):
        yield port, f"redis://127.0.0.1:{port}/0"
