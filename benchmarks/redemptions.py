"""The redemption benchmark of design.md's performance targets, side by side in one run.

    .venv/bin/python benchmarks/redemptions.py [--seconds 10] [--connections 64] [--only a,b]
        [--vouchers 50000] [--merchants 32]

Each xfq run starts its server on a clock standing at the bench round's opening, then, untimed:
enrolls and approves `--merchants` merchants through the operators' API (each approval gives a
till its API key), claims one voucher for each of `--vouchers` citizens through `POST
/v1/claims` (their own bearer tokens), makes each voucher's till code as the wallet's `POST
/v1/vouchers/{id}/till-code` does (a few are fetched from it and must be byte-for-byte the
same), and signs one `POST /v1/merchant/redemptions` per voucher with its till's key, its own
nonce and Idempotency-Key (merchants' nonces cannot be reused). Since the clock stands, the
90-second till codes and the 5-minute signature timestamps stay valid through the run.

wrk (`-t1`, as claims.py) with redemption.lua then sends those requests, each once: the last
fifth as a warm-up, the rest in the timed run. The ceilings run the same script (the same
requests, byte for byte in size) against the raw hello-worlds. After each xfq run the server is
stopped and its ledger checked: each voucher redeemed at most once, the 201 answers equal the
redemptions in the ledger (by order), every redeemed voucher has its redemption, and `xfq
reconcile` passes (the Redis run: against Redis too). A failed check fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from claims import (
    OPENS_AT,
    SPEC,
    WARMUP_S,
    Bench,
    _xfq_env,
    embedded_server,
    hello_command,
    persister,
)
from claims import reconcile as xfq_reconcile
from harness import (
    HERE,
    ROOT,
    Load,
    bench_parser,
    free_port,
    print_errors,
    print_loads,
    python,
    redis_server,
    server,
    tokens_file,
    wrk,
)

from xfq.adapters.sql import tables
from xfq.adapters.sql.schema import create_engine
from xfq.api.auth.merchant_signature import sign
from xfq.domain.till_code import issue_code
from xfq.domain.voucher import VoucherState
from xfq.simulation.http_client import HttpPool, Reply

PATH = "/v1/merchant/redemptions"
SCRIPT = HERE / "redemption.lua"
LIST_PRICE_FEN = 5_000  # above the bench types' 30-yuan threshold: every redemption applies
TOKENS = 60_000  # citizens' bearer tokens made once (benchmarks/.cache); --vouchers of them used
TILL_KEY = secrets.token_urlsafe(32)  # every server of this run signs till codes with it
PERSIST_WAIT_S = 120.0
Held = tuple[str, str]  # (person, voucher)


@dataclass(frozen=True)
class Till:
    merchant_id: str
    key_id: str
    secret: bytes


@dataclass(frozen=True)
class Prepared:
    requests: Path
    count: int
    warm: int  # the last `warm` lines are the warm-up's


class Client(Protocol):
    """What the set-up sends its requests through: `HttpPool`, or an app called in process."""

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> Reply: ...


def _env() -> dict[str, str]:
    return _xfq_env() | {"XFQ_TILL_CODE_KEY": TILL_KEY}


# --- set-up, not timed ----------------------------------------------------------------------


async def enroll(pool: Client, operator: str, merchants: int) -> list[Till]:
    tills = []
    for j in range(merchants):
        ops = {"Authorization": f"Bearer {operator}"}
        merchant = {"id": f"m{j:04d}", "name": f"bench shop {j}", "category": "retail"}
        made = await pool.request("POST", "/v1/ops/merchants", ops | {"Idempotency-Key": f"e{j}"},
                                  merchant)  # fmt: skip
        if made.status != 201:
            raise RuntimeError(f"enrolment refused: {made.status} {made.body[:300]!r}")
        approve = ops | {"Idempotency-Key": f"a{j}"}
        key = await pool.request("POST", f"/v1/ops/merchants/m{j:04d}/approve", approve)
        if key.status != 200:
            raise RuntimeError(f"approval refused: {key.status} {key.body[:300]!r}")
        body = key.json()
        tills.append(Till(body["merchant_id"], body["key_id"], body["secret"].encode()))
    return tills


async def claim_all(pool: Client, bearer: list[str]) -> list[Held]:
    """(person, voucher) for each token: one `plenty` voucher each, claimed over the API."""
    got = [("", "")] * len(bearer)

    async def claim(worker: int) -> None:
        for i in range(worker, len(bearer), 64):
            headers = {"Authorization": f"Bearer {bearer[i]}", "Idempotency-Key": f"setup-{i}"}
            reply = await pool.request("POST", "/v1/claims", headers, {"type_id": "plenty"})
            body = reply.json()
            if reply.status != 201 or body.get("code") != "issued":
                raise RuntimeError(f"claim not issued: {reply.status} {reply.body[:300]!r}")
            got[i] = (f"b{i:08d}", body["voucher"]["id"])  # the token's subject (harness._sign)

    await asyncio.gather(*(claim(w) for w in range(64)))
    return got


async def _same_codes(pool: Client, bearer: list[str], vouchers: list[Held], now: datetime) -> None:
    """The wallet's own till codes for a few vouchers must equal the ones made here."""
    for i in range(0, len(vouchers), max(1, len(vouchers) // 5)):
        person, voucher = vouchers[i]
        headers = {"Authorization": f"Bearer {bearer[i]}"}
        reply = await pool.request("POST", f"/v1/vouchers/{voucher}/till-code?qr=false", headers)
        if reply.status != 200:
            raise RuntimeError(f"no till code: {reply.status} {reply.body[:300]!r}")
        if reply.json()["code"] != issue_code(TILL_KEY.encode(), voucher, person, now):
            raise RuntimeError("the till codes made here differ from the wallet's")


async def _setup(port: int, people: int, merchants: int) -> tuple[list[Till], list[Held]]:
    with tokens_file(TOKENS).open(encoding="ascii") as lines:
        bearer = [next(lines).strip() for _ in range(people)]
    operator = tokens_file(1, "operator").read_text(encoding="ascii").strip()
    pool = HttpPool("127.0.0.1", port, 64)
    await pool.open()
    try:
        tills = await enroll(pool, operator, merchants)
        started = time.perf_counter()
        vouchers = await claim_all(pool, bearer)
        took_s = time.perf_counter() - started
        print(f"  set-up: {people:,} vouchers claimed in {took_s:.1f} s", file=sys.stderr)
        await _same_codes(pool, bearer, vouchers, datetime.fromisoformat(OPENS_AT))
    finally:
        await pool.close()
    return tills, vouchers


def signed(tills: list[Till], vouchers: list[Held]) -> list[list[str]]:
    """One signed redemption a voucher: key id, timestamp, nonce, signature, Idempotency-Key,
    body; at the round's opening, where the servers' clocks stand."""
    now = datetime.fromisoformat(OPENS_AT)
    timestamp, key = int(now.timestamp()), TILL_KEY.encode()
    requests = []
    for i, (person, voucher) in enumerate(vouchers):
        till = tills[i % len(tills)]
        order = {"list_price_fen": LIST_PRICE_FEN, "merchant_promotion_fen": 0}
        code = issue_code(key, voucher, person, now)
        body = json.dumps({"code": code, "order_ref": f"o{i}", "order": order},
                          separators=(",", ":"))  # fmt: skip
        nonce = secrets.token_urlsafe(24)
        signature = sign(till.secret, "POST", PATH, timestamp, nonce, body.encode())
        requests.append([till.key_id, str(timestamp), nonce, signature, f"rd-{i}", body])
    return requests


def _sign_all(tills: list[Till], vouchers: list[Held], path: Path) -> Prepared:
    """The signed redemptions, a line each, for redemption.lua."""
    lines = ["\t".join(fields) for fields in signed(tills, vouchers)]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return Prepared(path, len(lines), len(lines) // 5)


def _wait_persisted(url: str, count: int) -> None:
    """The Redis engine's claims reach the PostgreSQL ledger through `xfq persist`: a till can
    redeem a voucher only once it is there."""
    engine = create_engine(url)
    deadline = time.monotonic() + PERSIST_WAIT_S
    try:
        while time.monotonic() < deadline:
            with engine.connect() as c:
                found = c.execute(sa.select(sa.func.count()).select_from(tables.vouchers))
                if found.scalar_one() >= count:
                    return
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise RuntimeError(f"the persister had not moved {count} vouchers in {PERSIST_WAIT_S:.0f} s")


def _prepare(port: int, args: argparse.Namespace, workdir: Path, ledger: str = "") -> Prepared:
    tills, vouchers = asyncio.run(_setup(port, args.vouchers, args.merchants))
    if ledger:
        _wait_persisted(ledger, len(vouchers))
    return _sign_all(tills, vouchers, workdir / f"requests-{port}.tsv")


# --- the timed part ---------------------------------------------------------------------------


@dataclass
class Answered:
    """What wrk saw of the redemptions: the orders answered 201, and how many requests were
    still in flight when it stopped (the server may have redeemed them, unseen)."""

    created: list[str]
    unanswered: int = 0


def _redeem(name: str, port: int, prepared: Prepared, args: argparse.Namespace, workdir: Path
            ) -> tuple[Load, Answered]:  # fmt: skip
    """The warm-up (the last fifth of the requests), then the run."""
    answered = Answered([])
    run = prepared.count - prepared.warm
    loads = []
    for what, seconds, offset, count in (("warm", WARMUP_S, run, prepared.warm),
                                         ("run", args.seconds, 0, run)):  # fmt: skip
        out = workdir / f"created-{port}-{what}.txt"
        env = {"XFQ_BENCH_REQUESTS": str(prepared.requests), "XFQ_BENCH_OFFSET": str(offset),
               "XFQ_BENCH_COUNT": str(count), "XFQ_BENCH_CREATED": str(out)}  # fmt: skip
        loads.append(wrk(name, port, PATH, seconds, args.connections, env, SCRIPT))
        head, _, refs = out.read_text(encoding="ascii").partition("\n")
        answered.unanswered += int(head.removeprefix("# unanswered "))
        answered.created += refs.split()
        if loads[-1].codes.get("exhausted"):
            loads[-1].notes.append(f"RAN OUT of pre-signed requests in the {what}: more --vouchers")
    warm, load = loads
    load.notes += [n for n in warm.notes if "RAN OUT" in n]
    return load, answered


def _check(load: Load, ledger: str, answered: Answered, *extra: str) -> Load:
    """Each voucher redeemed at most once, every 201 in the ledger and no redemption there
    beyond the requests still in flight when wrk stopped, and `xfq reconcile`; any failure
    marks the run failed."""
    problems = _ledger_problems(ledger, answered)
    created = answered.created
    ok, report = xfq_reconcile(ledger, *extra)
    if not ok:
        problems.append("xfq reconcile failed:\n" + report)
    load.notes.append(f"ledger checked ({len(created):,} answered 201)" if not problems
                      else "LEDGER CHECK FAILED")  # fmt: skip
    for problem in problems:
        print(f"  {load.name}: {problem}", file=sys.stderr)
    return load


def _ledger_problems(ledger: str, answered: Answered) -> list[str]:
    engine = create_engine(ledger if "://" in ledger else f"sqlite:///{ledger}")
    r, v = tables.redemptions, tables.vouchers
    try:
        with engine.connect() as c:
            rows = c.execute(sa.select(r.c.voucher_id, r.c.order_ref, r.c.state)).all()
            redeemed = c.execute(
                sa.select(sa.func.count()).where(v.c.state == VoucherState.REDEEMED.value)
            ).scalar_one()
    finally:
        engine.dispose()
    problems = []
    voucher_ids = [row.voucher_id for row in rows]
    if len(set(voucher_ids)) != len(voucher_ids):
        problems.append(f"{len(voucher_ids) - len(set(voucher_ids))} vouchers redeemed twice")
    refs, created = {row.order_ref for row in rows}, set(answered.created)
    if len(created) != len(answered.created):
        problems.append("an order was answered 201 twice")
    if created - refs:
        problems.append(f"{len(created - refs)} orders answered 201 are not in the ledger")
    unseen = len(refs - created)
    if unseen > answered.unanswered:
        problems.append(
            f"{unseen} redemptions in the ledger without a 201, but only {answered.unanswered}"
            " requests were unanswered when wrk stopped"
        )
    if redeemed != len(rows):
        problems.append(f"{redeemed} vouchers redeemed, {len(rows)} redemptions")
    return problems


# --- the runs ---------------------------------------------------------------------------------


def ceiling(server_name: str, workers: int) -> Callable[[argparse.Namespace, Path], Load]:
    """The raw hello-world under the same server and worker count, sent the same requests."""

    def run(args: argparse.Namespace, workdir: Path) -> Load:
        prepared = _dummy_requests(workdir)
        port = free_port()
        with server(hello_command(server_name, workers, port), port, "hello", cwd=HERE):
            env = {"XFQ_BENCH_REQUESTS": str(prepared), "XFQ_BENCH_WRAP": "1"}
            wrk("warm", port, PATH, WARMUP_S, args.connections, env, SCRIPT)
            name = f"ceiling-{server_name}-{workers}w"
            return wrk(name, port, PATH, args.seconds, args.connections, env, SCRIPT)

    return run


def _dummy_requests(workdir: Path) -> Path:
    """Requests shaped as the real ones (the hello-world reads and ignores them)."""
    path = workdir / "dummy-requests.tsv"
    if not path.exists():
        tills = [Till("m0000", "mk_dummy", secrets.token_bytes(32))]
        vouchers = [(f"b{i:08d}", f"vc_{secrets.token_urlsafe(12)}") for i in range(2_000)]
        _sign_all(tills, vouchers, path)
    return path


def embedded(server_name: str | None = None) -> Callable[[argparse.Namespace, Path], Load]:
    """`xfq serve` on a SQLite ledger, one process (its default: uvicorn in process)."""

    def run(args: argparse.Namespace, workdir: Path) -> Load:
        chosen = server_name or "uvicorn"
        with embedded_server(workdir, _env(), chosen) as (port, ledger):
            prepared = _prepare(port, args, workdir)
            load, answered = _redeem(f"embedded-{chosen}-1w", port, prepared, args, workdir)
        return _check(load, str(ledger), answered)

    return run


def redis_postgres(server_name: str = "granian") -> Callable[[argparse.Namespace, Path], Load]:
    """The claim benchmark's deployment: Redis, a PostgreSQL ledger, `xfq persist` as a process
    of its own, 2 workers."""

    def run(args: argparse.Namespace, workdir: Path) -> Load:
        sys.path.insert(0, str(ROOT / "tests"))
        from servers.postgres_server import PostgresServer

        env = _env() | {"XFQ_REDIS_PERSISTER": "false"}
        with PostgresServer() as pg, redis_server(workdir) as (_redis_port, url):
            ledger, port = pg.url(), free_port()
            with _xfq_workers(ledger, url, port, env, server_name), persister(url, ledger):
                prepared = _prepare(port, args, workdir, ledger)
                name = f"redis-pg-2w-{server_name}"
                load, answered = _redeem(name, port, prepared, args, workdir)
            xfq_reconcile(ledger, "--redis", url, "--repair")
            return _check(load, ledger, answered, "--redis", url)

    return run


@contextmanager
def _xfq_workers(
    ledger: str, redis_url: str, port: int, env: dict[str, str], server_name: str
) -> Iterator[None]:
    command = [python(), "-m", "xfq", "serve", "--spec", str(SPEC), "--postgres", ledger,
               "--port", str(port), "--redis", redis_url, "--workers", "2",
               "--server", server_name]  # fmt: skip
    with server(command, port, "xfq serve --redis --postgres", env, workers=2):
        yield


BENCHES = [
    Bench("ceiling-1w", "raw ASGI hello-world, uvicorn, 1 worker", ceiling("uvicorn", 1)),
    Bench(
        "embedded",
        "embedded default: `xfq serve` on SQLite, 1 process (uvicorn), redemptions",
        embedded(),
    ),
    Bench("granian-2w", "raw ASGI hello-world, granian, 2 workers", ceiling("granian", 2)),
    Bench("granian-rsgi-2w", "the same under granian's RSGI interface", ceiling("granian-rsgi", 2)),
    Bench(
        "redis-pg",
        "Redis engine, PostgreSQL ledger, `xfq persist` apart, 2 granian workers: redemptions",
        redis_postgres(),
    ),
    Bench(  # not in design.md's list; for comparison, run with --only
        "embedded-granian",
        "the embedded engine under granian (1 worker process, RSGI)",
        embedded("granian"),
    ),
    Bench("granian-rsgi-1w", "RSGI hello-world, granian, 1 worker", ceiling("granian-rsgi", 1)),
]
DEFAULT = ("ceiling-1w", "embedded", "granian-2w", "granian-rsgi-2w", "redis-pg")
TARGET_RPS, TARGET_P99_MS = 5_000.0, 20.0
RATIOS = (
    ("redis-pg", "granian-2w"),
    ("redis-pg", "granian-rsgi-2w"),
    ("embedded", "ceiling-1w"),
    ("embedded-granian", "granian-rsgi-1w"),
)


def report(results: dict[str, Load], args: argparse.Namespace) -> bool:
    print_loads(results, args.connections, args.seconds, WARMUP_S)
    goal = f"≥ {TARGET_RPS:,.0f} redemptions/s with p99 ≤ {TARGET_P99_MS:g} ms"
    print(f"\ntarget (design.md): {goal}")
    for name in ("redis-pg", "embedded", "embedded-granian"):
        if name in results:
            load = results[name]
            met = load.rps >= TARGET_RPS and load.p99_ms <= TARGET_P99_MS
            print(f"  {name:<18} {load.rps:>7.0f}/s p99 {load.p99_ms:.1f} ms: "
                  f"{'met' if met else 'NOT met'}")  # fmt: skip
    print("ratio to the ceiling of the same server and worker count:")
    for a, b in RATIOS:
        if a in results and b in results and results[b].rps:
            print(f"  {a} / {b}: {results[a].rps / results[b].rps:.2f}")
    failed = [n for n, load in results.items() if any(
        "FAILED" in note or "RAN OUT" in note for note in load.notes)]  # fmt: skip
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see the notes above)")
    print_errors(results)
    return not failed


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--vouchers", type=int, default=50_000, help="citizens, one voucher and redemption each"
    )
    parser.add_argument("--merchants", type=int, default=32, help="enrolled tills")
    args = parser.parse_args()
    if not 5 <= args.vouchers <= TOKENS:
        parser.error(f"--vouchers: 5 to {TOKENS:,}")
    names = args.only.split(",") if args.only else DEFAULT
    unknown = set(names) - {b.name for b in BENCHES}
    if unknown:
        parser.error(f"--only: unknown runs {', '.join(sorted(unknown))}")
    tokens_file(TOKENS)
    results: dict[str, Load] = {}
    with tempfile.TemporaryDirectory(prefix="xfq-redeem-") as tmp:
        for bench in (b for b in BENCHES if b.name in names):
            print(f"… {bench.name}: {bench.what}", flush=True)
            results[bench.name] = bench.run(args, Path(tmp))
    sys.exit(0 if report(results, args) else 1)


if __name__ == "__main__":
    main()
