"""Overload: a real `xfq serve` under far more concurrent claims than it keeps in flight.

Admission is set low (64 claims in flight per process, against 400 connections) so that a
Python client on this machine overloads it for sure. Every answer must be one a citizen's app
understands (`issued`, `sold_out`, `limit_reached`, or `429` with Retry-After), none a 5xx or a
client timeout within `CLIENT_TIMEOUT_S`; afterwards the server still answers /health, its
memory grew by a bounded amount, and the ledger reconciles with the `issued` answers (no
oversell).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from servers.redis_fixtures import redis_server, redis_server_session  # noqa: F401
from servers.redis_servers import RedisServer, free_port
from xfq.api.auth.tokens import Role
from xfq.simulation.over_http import DemoIdentityProvider

BENCH = Path(__file__).parents[2] / "benchmarks" / "bench-campaign.toml"
OPENING = datetime(2022, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
STOCK = 60  # of type "plenty", set below: sold out part way through the load
PEOPLE = 1500
TAPS = 2  # each person sends this many claims at once, with one key (a double tap)
CONNECTIONS = 400
CLIENT_TIMEOUT_S = 15.0  # the stated bound: no answer may take longer
RSS_GROWTH_BOUND_KB = 150 * 1024  # per server process, over its baseline after warm-up
EXPECTED = {"issued", "sold_out", "limit_reached", "overloaded", "rate_limited"}


@dataclass
class Outcomes:
    codes: Counter[str] = field(default_factory=Counter)
    issued_ids: set[str] = field(default_factory=set)
    missing_retry_after: int = 0
    errors: list[str] = field(default_factory=list)


@contextmanager
def xfq_server(
    tmp_path: Path, idp: DemoIdentityProvider, *extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    spec = tmp_path / "campaign.toml"
    spec.write_text(BENCH.read_text().replace("count = 50000000", f"count = {STOCK}"))
    trusted = idp.trusted()
    env = {
        **os.environ,
        "XFQ_ISSUERS": json.dumps(
            [{"issuer": trusted.issuer, "public_key_pem": trusted.public_key_pem}]
        ),
        "XFQ_SIMULATED_START": (OPENING + timedelta(seconds=1)).isoformat(),
        "XFQ_CLAIM_MAX_IN_FLIGHT": "64",
        "XFQ_CLAIM_MAX_WAIT_MS": "200",
        "XFQ_CLAIM_RATE_PER_ADDRESS_PER_S": "1000000",  # one client address sends everything
        "XFQ_CLAIM_BURST_PER_ADDRESS": "1000000",
    }
    port, ledger = free_port(), tmp_path / "ledger.db"
    command = [sys.executable, "-m", "xfq", "serve", "--spec", str(spec), "--ledger", str(ledger)]
    log = (tmp_path / "server.log").open("wb")  # a file, not a pipe nobody reads
    server = subprocess.Popen(
        [*command, "--port", str(port), *extra], env=env, stdout=log, stderr=log
    )
    try:
        _wait_healthy(server, f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}", server, ledger
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_healthy(server: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited with {server.returncode}"
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy server at {base}")


def _serving_pids(server: subprocess.Popen[bytes]) -> list[int]:
    """The processes that answer requests: granian's workers if any, else the server itself."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(c) for c in children] or [server.pid]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def _overload(base: str, idp: DemoIdentityProvider) -> Outcomes:
    outcomes = Outcomes()
    tokens = [
        idp.token(f"o{n}", Role.CITIZEN, OPENING, ttl=timedelta(days=30)) for n in range(PEOPLE)
    ]
    # A person's taps next to each other, so that they are in flight together.
    jobs = iter([(n, token) for n, token in enumerate(tokens) for _ in range(TAPS)])
    port = int(base.rsplit(":", 1)[1])

    async def connection() -> None:  # one keep-alive connection sending claims back to back
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for person, token in jobs:
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"k{person}"}
                try:
                    answer = await asyncio.wait_for(
                        _post(reader, writer, headers, b'{"type_id":"plenty"}'), CLIENT_TIMEOUT_S
                    )
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as error:
                    outcomes.errors.append(f"{type(error).__name__}: {error}")
                    return  # the connection's state is unknown: stop using it
                _record(outcomes, *answer)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return outcomes


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 POST /v1/claims: httpx costs more CPU per request than the server
    spends answering, and the load must fall on the server."""
    lines = [f"{k}: {v}" for k, v in headers.items()]
    head = "\r\n".join(
        ["POST /v1/claims HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
         f"Content-Length: {len(body)}", *lines, "", ""]
    )  # fmt: skip
    writer.write(head.encode() + body)
    status = int((await reader.readline()).split()[1])
    answer_headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    content = await reader.readexactly(int(answer_headers["content-length"]))
    return status, answer_headers, content


def _record(outcomes: Outcomes, status: int, headers: dict[str, str], content: bytes) -> None:
    if status >= 500:
        outcomes.errors.append(f"{status}: {content[:200]!r}")
        return
    body = json.loads(content)
    outcomes.codes[body["code"]] += 1
    if status == 429 and "retry-after" not in headers:
        outcomes.missing_retry_after += 1
    if body["code"] == "issued":
        outcomes.issued_ids.add(body["voucher"]["id"])


def _reconcile(ledger: Path, answers: set[str], *extra: str) -> subprocess.CompletedProcess[str]:
    answered = ledger.with_name("answered.txt")
    answered.write_text("\n".join(sorted(answers)) + "\n")
    command = [sys.executable, "-m", "xfq", "reconcile", str(ledger), "--answers", str(answered)]
    return subprocess.run(
        [*command, *extra], capture_output=True, text=True, timeout=120, check=False
    )


def _overload_and_check(
    base: str, server: subprocess.Popen[bytes], idp: DemoIdentityProvider
) -> Outcomes:
    pids = _serving_pids(server)
    baseline_kb = {pid: _rss_kb(pid) for pid in pids}
    outcomes = asyncio.run(_overload(base, idp))
    assert outcomes.errors == [], outcomes.errors[:5]
    assert set(outcomes.codes) <= EXPECTED, outcomes.codes
    assert outcomes.codes["overloaded"] > 0, outcomes.codes  # the bound was reached and held
    assert outcomes.codes["sold_out"] > 0, outcomes.codes  # from memory, never shed
    assert outcomes.missing_retry_after == 0
    assert sum(outcomes.codes.values()) == PEOPLE * TAPS
    assert 0 < len(outcomes.issued_ids) <= STOCK
    for pid, before_kb in baseline_kb.items():
        assert _rss_kb(pid) - before_kb < RSS_GROWTH_BOUND_KB, (pid, before_kb, _rss_kb(pid))
    assert server.poll() is None
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert "xfq_claims_shed_total" in metrics
    return outcomes


def test_the_embedded_server_sheds_overload_with_429_and_stays_up(tmp_path: Path) -> None:
    idp = DemoIdentityProvider(environment="development")
    with xfq_server(tmp_path, idp) as (base, server, ledger):
        outcomes = _overload_and_check(base, server, idp)
    done = _reconcile(ledger, outcomes.issued_ids)
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_workers_on_redis_shed_overload_with_429_and_stay_up(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    idp = DemoIdentityProvider(environment="development")
    with xfq_server(tmp_path, idp, "--workers", "2", "--redis", redis_server.url) as (
        base,
        server,
        ledger,
    ):
        outcomes = _overload_and_check(base, server, idp)
        _wait_persisted(ledger, len(outcomes.issued_ids))
    done = _reconcile(ledger, outcomes.issued_ids, "--redis", redis_server.url)
    assert done.returncode == 0, done.stdout + done.stderr


def _wait_persisted(ledger: Path, count: int, timeout_s: float = 60) -> None:
    """The persister inside the server moves Redis's claims into the ledger a moment later."""
    import sqlite3

    deadline = time.monotonic() + timeout_s
    held = 0
    while time.monotonic() < deadline:
        with sqlite3.connect(ledger) as db:
            held = db.execute("SELECT count(*) FROM vouchers").fetchone()[0]
        if held >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{held} of {count} issued vouchers reached the ledger")
