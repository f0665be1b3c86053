"""`xfq serve` in worker processes: one embedded worker, or several on Redis; granian's RSGI
interface (the default) answers every request as its ASGI interface does; a simulated clock
running from an anchor reads the same time in every worker and refills the rate limits."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from servers.redis_fixtures import redis_server, redis_server_session  # noqa: F401
from servers.redis_servers import RedisServer
from xfq.adapters.sql.ledger import SqlLedger
from xfq.api.auth.tokens import Role
from xfq.api.observability import FLUSH_S
from xfq.simulation.over_http import DemoIdentityProvider
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
OPENS_AT = load_campaign(EXAMPLE).round("r6").opens_at
RETAIL = "r6-retail-30-6"  # 84,000: never sold out here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(
    tmp_path: Path, idp: DemoIdentityProvider, *extra: str, settings: dict[str, str] | None = None
) -> Iterator[str]:
    port = _free_port()
    trusted = idp.trusted()
    issuer = {"issuer": trusted.issuer, "public_key_pem": trusted.public_key_pem}
    env = {
        **os.environ,
        "XFQ_ISSUERS": json.dumps([issuer]),
        "XFQ_SIMULATED_START": OPENS_AT.isoformat(),
        **(settings or {}),
    }
    command = [sys.executable, "-m", "xfq", "serve", "--spec", str(EXAMPLE)]
    command += ["--ledger", str(tmp_path / "ledger.db"), "--port", str(port), *extra]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_ready(server, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def two_workers(
    tmp_path: Path,
    idp: DemoIdentityProvider,
    redis: RedisServer,
    server: str,
    settings: dict[str, str] | None = None,
) -> AbstractContextManager[str]:
    workers = ("--workers", "2", "--redis", redis.url, "--server", server)
    return serving(tmp_path, idp, *workers, settings=settings)


def _wait_ready(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy server on port {port}")


def _claims(base: str, idp: DemoIdentityProvider, people: int) -> Counter[str]:
    codes: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(people):
            token = idp.token(f"w-{n}", Role.CITIZEN, OPENS_AT, ttl=timedelta(days=30))
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"k-{n}"}
            answer = client.post("/v1/claims", json={"type_id": RETAIL}, headers=headers)
            codes[answer.json()["code"]] += 1
    return codes


def _issued_in_metrics(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found = re.search(r'^xfq_claims_total\{code="issued"\} ([0-9.e+]+)$', text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


def test_one_granian_worker_serves_the_embedded_engine(tmp_path: Path) -> None:
    idp = DemoIdentityProvider(environment="development")
    with serving(tmp_path, idp, "--server", "granian") as base:
        assert _claims(base, idp, 5) == Counter(issued=5)
        assert _issued_in_metrics(base) == 5


def test_several_workers_without_redis_are_refused_with_a_reason(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xfq", "serve", "--spec", str(EXAMPLE), "--workers", "2",
         "--ledger", str(tmp_path / "l.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "several workers need --redis" in done.stderr
    assert "Traceback" not in done.stderr


def test_several_redis_workers_on_a_sqlite_ledger_are_refused_in_production(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "l.db"
    done = subprocess.run(
        [sys.executable, "-m", "xfq", "serve", "--spec", str(EXAMPLE), "--workers", "2",
         "--redis", "redis://127.0.0.1:1/0", "--ledger", str(ledger)],
        env={**os.environ, "XFQ_ENVIRONMENT": "production"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    said = " ".join(done.stderr.split())  # as printed, wrapped to the terminal's width
    assert done.returncode == 2, done.stderr
    assert "2 workers on a SQLite ledger" in said and "Idempotency-Key in flight" in said
    assert "XFQ_ENVIRONMENT=production" in said and "--postgres URL" in said
    assert "Traceback" not in done.stderr
    assert not ledger.exists()  # refused before anything was started or written


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_redis_out_of_reach_at_the_start_is_said_in_one_line(
    tmp_path: Path, workers: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xfq", "serve", "--spec", str(EXAMPLE), "--port", "1",
         "--redis", "redis://127.0.0.1:1/0", "--ledger", str(tmp_path / "l.db"),
         "--workers", workers],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert "the Redis claim engine (XFQ_REDIS_URL) could not start" in said
    assert "Connection refused" in said  # what Redis's client met
    assert "Traceback" not in done.stderr


def test_a_persister_whose_redis_is_out_of_reach_says_so_in_one_line(tmp_path: Path) -> None:
    ledger = SqlLedger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.install_campaign(load_campaign(EXAMPLE), EXAMPLE.read_text(), datetime.now(UTC))
    ledger.close()
    done = subprocess.run(
        [sys.executable, "-m", "xfq", "persist", "--redis", "redis://127.0.0.1:1/0",
         "--ledger", str(tmp_path / "l.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert "the persister could not start: Redis did not answer" in said
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("server", ["granian", "granian-asgi", "uvicorn"])
def test_two_workers_on_redis_issue_and_count_every_claim_once(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    server: str,
) -> None:
    idp = DemoIdentityProvider(environment="development")
    with two_workers(tmp_path, idp, redis_server, server) as base:
        assert _claims(base, idp, 40) == Counter(issued=40)
        # Scrapes land on either worker; multiprocess mode adds both workers' counts, each
        # handed over within FLUSH_S of the claim.
        time.sleep(FLUSH_S + 0.5)
        assert {_issued_in_metrics(base) for _ in range(4)} == {40}


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_every_worker_answers_on_new_connections(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    server: str,
) -> None:
    """New connections reach every worker (granian: each its own SO_REUSEPORT socket; uvicorn:
    one shared socket), and /health says which process answered (what `xfq rehearse` waits on
    before its wave)."""
    idp = DemoIdentityProvider(environment="development")
    with two_workers(tmp_path, idp, redis_server, server) as base:
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            with httpx.Client(base_url=base, timeout=5) as fresh:  # a new connection each time
                seen.add(fresh.get("/health").json()["process"])
        assert len(seen) == 2


STATIC = Path(__file__).parents[2] / "src" / "xfq" / "web" / "static" / "xfq.css"


def _exchanges(base: str, idp: DemoIdentityProvider) -> list[tuple[str, int, str, object, object]]:
    """Requests of every kind the app serves: each answer's status, the headers a client
    acts on, and its body (fields that differ from run to run left out)."""
    citizen = idp.token("rsgi-1", Role.CITIZEN, OPENS_AT, ttl=timedelta(days=30))
    operator = idp.token("op", Role.OPERATOR, OPENS_AT, ttl=timedelta(days=30))
    bearer = {"Authorization": f"Bearer {citizen}"}
    claim = {**bearer, "Idempotency-Key": "k-1"}
    merchant = {"id": "m1", "name": "一家店", "category": "retail"}
    requests: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("GET", "/v1/campaign?lang=en&x=%20y", {}, None),
        ("GET", "/static/xfq.css", {}, None),
        ("GET", "/no/such/page", {}, None),
        ("POST", "/v1/claims", claim, b'{"type_id": "%s"}' % RETAIL.encode()),
        ("POST", "/v1/claims", claim, b'{"type_id": "%s"}' % RETAIL.encode()),  # a repeat
        ("POST", "/v1/claims", {**bearer, "Idempotency-Key": "k-2"}, b"x" * 5000),
        ("POST", "/v1/claims", {**bearer, "Idempotency-Key": "k-3"}, b"{not json"),
        ("POST", "/v1/claims", {"Idempotency-Key": "k-4"}, b'{"type_id": "a"}'),
        ("POST", "/v1/rounds/r%36/pass", bearer, None),  # r6, percent-encoded
        ("POST", "/v1/ops/merchants", {"Authorization": f"Bearer {operator}",
         "Idempotency-Key": "m-1", "Content-Type": "application/json"},
         json.dumps(merchant).encode()),
    ]  # fmt: skip
    seen: list[tuple[str, int, str, object, object]] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for method, path, headers, body in requests:
            answer = client.request(method, path, headers=headers, content=body)
            kind = answer.headers.get("content-type", "")
            told = [answer.headers.get(name) for name in ("retry-after", "www-authenticate")]
            seen.append((path, answer.status_code, kind, told, _stable(answer)))
    return seen


def _stable(answer: httpx.Response) -> object:
    if not answer.headers.get("content-type", "").endswith("json"):
        return answer.content
    body = answer.json()
    voucher = body.get("voucher") if isinstance(body, dict) else None
    for varying in (body, voucher):
        if isinstance(varying, dict):
            for name in ("id", "issued_at", "valid_from", "token", "expires_at"):
                varying.pop(name, None)
    return body


def test_granians_rsgi_interface_answers_as_its_asgi_interface(tmp_path: Path) -> None:
    idp = DemoIdentityProvider(environment="development")
    answers = {}
    for server in ("granian", "granian-asgi"):
        (tmp_path / server).mkdir()
        with serving(tmp_path / server, idp, "--server", server) as base:
            answers[server] = _exchanges(base, idp)
    assert answers["granian"] == answers["granian-asgi"]
    by_path = {path: (status, kind) for path, status, kind, _, _ in answers["granian"]}
    assert by_path["/static/xfq.css"][0] == 200  # a file, streamed in chunks
    assert answers["granian"][1][4] == STATIC.read_bytes()
    statuses = [status for _, status, _, _, _ in answers["granian"]]
    assert statuses == [200, 200, 404, 201, 201, 413, 422, 401, 200, 201]


def _running_clock() -> tuple[datetime, dict[str, str]]:
    """An anchor (now) and the settings of a clock that reads OPENS_AT at it."""
    anchor = datetime.now(UTC)
    return anchor, {"XFQ_SIMULATED_ANCHOR": anchor.isoformat()}


def test_every_worker_reads_the_same_running_clock(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Each worker's time is OPENS_AT + the real time since the anchor, read between two
    readings of the real clock here: the workers agree, and their time moves."""
    idp = DemoIdentityProvider(environment="development")
    anchor, settings = _running_clock()
    with two_workers(tmp_path, idp, redis_server, "granian", settings) as base:
        read: dict[int, list[datetime]] = {}
        deadline = time.monotonic() + 60
        while len(read) < 2 and time.monotonic() < deadline:
            with httpx.Client(base_url=base, timeout=5) as fresh:  # one connection, one worker
                process = fresh.get("/health").json()["process"]
                before = OPENS_AT + (datetime.now(UTC) - anchor)
                now = datetime.fromisoformat(fresh.get("/dev/clock").json()["now"])
                after = OPENS_AT + (datetime.now(UTC) - anchor)
            assert before <= now <= after, (process, before, now, after)
            read.setdefault(process, []).append(now)
        assert len(read) == 2
        assert all(times == sorted(times) for times in read.values())


def test_a_persons_rate_limit_refills_on_the_running_clock(tmp_path: Path) -> None:
    """Burst 1 at 1 claim a second: a claim soon after the first is refused (429), and once a
    second has passed the same claim is answered again. A standing clock never refills."""
    idp = DemoIdentityProvider(environment="development")
    _, settings = _running_clock()
    settings |= {"XFQ_CLAIM_BURST_PER_PERSON": "1", "XFQ_CLAIM_RATE_PER_PERSON_PER_S": "1"}
    token = idp.token("refill", Role.CITIZEN, OPENS_AT, ttl=timedelta(days=30))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k-1"}
    with serving(tmp_path, idp, settings=settings) as base, httpx.Client(base_url=base) as client:

        def claim() -> httpx.Response:
            return client.post("/v1/claims", json={"type_id": RETAIL}, headers=headers)

        assert claim().status_code == 201
        statuses = [claim().status_code for _ in range(20)]  # some within a second of a 201
        assert 429 in statuses, statuses
        deadline = time.monotonic() + 30
        while (answer := claim()).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.1)  # a refused claim takes nothing from the bucket
        assert answer.status_code == 201, answer.text
        assert answer.json()["code"] == "issued"
