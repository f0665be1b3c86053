"""The claim benchmarks of design.md's performance targets, side by side in one run.

    .venv/bin/python benchmarks/claims.py [--seconds 10] [--connections 64] [--only a,b]

Load generator: wrk (Debian's package, one thread, as in perf-limits.md) with claim.lua, which
sends each request as a new person with a token of their own: the identity provider's bearer
token, or (the `-pass` runs) the claim pass each person got for it before the opening, fetched
from the server before the timed run and not counted in it. Every xfq server's ledger is
checked afterwards with `xfq reconcile` (no oversell, no limit breach, every invariant): a
failing check fails the run, whatever the speed. Results and how to read them: RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import (
    HERE,
    ROOT,
    Load,
    bench_parser,
    free_port,
    issuers_env,
    pass_key_env,
    passes_file,
    print_errors,
    print_loads,
    python,
    redis_server,
    server,
    stop,
    tokens_file,
    wrk,
)

SPEC = HERE / "bench-campaign.toml"
ROUND = "b1"
OPENS_AT = "2022-03-05T10:00:00+08:00"  # the bench round's opening; the server's clock stands here
EARLY = "2022-03-05T09:30:00+08:00"  # half an hour before: passes handed out, claims not_open
WARMUP_S = 2.0


@dataclass(frozen=True)
class Bench:
    name: str
    what: str
    run: Callable[[argparse.Namespace, Path], Load]


def _xfq_env(per_person_limit: bool = True) -> dict[str, str]:
    relaxed = (
        {}
        if per_person_limit
        else {
            "XFQ_CLAIM_RATE_PER_PERSON_PER_S": "10000000",
            "XFQ_CLAIM_BURST_PER_PERSON": "10000000",
        }
    )
    return relaxed | {
        **pass_key_env(),  # one pass key for every server of the run, so passes carry over
        "XFQ_ISSUERS": issuers_env(),
        "XFQ_SIMULATED_START": OPENS_AT,
        # wrk sends everything from 127.0.0.1: the per-address limit would measure itself.
        "XFQ_CLAIM_RATE_PER_ADDRESS_PER_S": "10000000",
        "XFQ_CLAIM_BURST_PER_ADDRESS": "10000000",
    }


@contextmanager
def embedded_server(
    workdir: Path, env: dict[str, str], server_name: str = "uvicorn"
) -> Iterator[tuple[int, Path]]:
    port, ledger = free_port(), workdir / f"ledger-{free_port()}.db"
    command = [python(), "-m", "xfq", "serve", "--spec", str(SPEC), "--ledger", str(ledger),
               "--server", server_name]  # fmt: skip
    with server([*command, "--port", str(port)], port, "xfq serve", env):
        yield port, ledger


@contextmanager
def redis_xfq_server(
    workdir: Path, env: dict[str, str], redis_url: str, workers: int
) -> Iterator[tuple[int, Path]]:
    port, ledger = free_port(), workdir / f"ledger-{free_port()}.db"
    command = [python(), "-m", "xfq", "serve", "--spec", str(SPEC), "--ledger", str(ledger),
               "--port", str(port), "--redis", redis_url, "--workers", str(workers),
               "--server", "granian"]  # fmt: skip
    with server(command, port, "xfq serve --redis", env, workers=workers):
        yield port, ledger


def reconcile(ledger: Path | str, *extra: str) -> tuple[bool, str]:
    started = time.monotonic()
    done = subprocess.run(
        [python(), "-m", "xfq", "reconcile", str(ledger), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    print(f"  xfq reconcile {' '.join(extra)}: {time.monotonic() - started:.1f} s", file=sys.stderr)
    return done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _claims(
    args: argparse.Namespace,
    name: str,
    port: int,
    type_id: str,
    mode: str,
    tokens: Path,
    credential: str = "bearer",
) -> Load:
    people = args.people
    if credential == "pass":  # got before the timed runs, as wallets would before 10:00
        people = args.pass_people if mode == "spread" else 1
        tokens = passes_file(port, ROUND, people, tokens)
    env = {
        "XFQ_BENCH_TOKENS": str(tokens),
        "XFQ_BENCH_TYPE": type_id,
        "XFQ_BENCH_MODE": mode,
        "XFQ_BENCH_CREDENTIAL": credential,
    }
    # Warm-up with people of its own, the last quarter of the tokens; the run starts at the first.
    warm = {**env, "XFQ_BENCH_RUN": "warm", "XFQ_BENCH_OFFSET": str(people * 3 // 4)}
    wrk(name, port, "/v1/claims", WARMUP_S, args.connections, warm)
    return wrk(name, port, "/v1/claims", args.seconds, args.connections, env)


def _checked(load: Load, ledger: Path | str, *extra: str) -> Load:
    ok, report = reconcile(ledger, *extra)
    load.notes.append("ledger reconciled" if ok else "LEDGER CHECK FAILED")
    if not ok:
        print(report, file=sys.stderr)
    return load


def hello_command(server_name: str, workers: int, port: int) -> list[str]:
    """The raw ASGI hello-world under uvicorn (uvloop, httptools) or granian; or the same
    answer under granian's RSGI interface (`granian-rsgi`)."""
    if server_name.startswith("granian"):
        rsgi = server_name == "granian-rsgi"
        return [python(), "-m", "granian", "--interface", "rsgi" if rsgi else "asgi",
                "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port),
                "--no-ws", "--log-level", "warning",
                "hello_rsgi:app" if rsgi else "hello_asgi:app"]  # fmt: skip
    return [python(), "-m", "uvicorn", "hello_asgi:app", "--workers", str(workers),
            "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip


def ceiling(server_name: str, workers: int) -> Callable[[argparse.Namespace, Path], Load]:
    def run(args: argparse.Namespace, _workdir: Path) -> Load:
        port = free_port()
        command = hello_command(server_name, workers, port)
        with server(command, port, f"{server_name} hello", cwd=HERE):
            env = {"XFQ_BENCH_TOKENS": str(tokens_file(args.people))}
            wrk("warm", port, "/", WARMUP_S, args.connections, env)
            name = f"ceiling-{server_name}-{workers}w"
            return wrk(name, port, "/", args.seconds, args.connections, env)

    return run


def embedded(
    type_id: str, mode: str, server_name: str = "uvicorn", credential: str = "bearer"
) -> Callable[[argparse.Namespace, Path], Load]:
    def run(args: argparse.Namespace, workdir: Path) -> Load:
        tokens = tokens_file(args.people if mode == "spread" else 1)
        # One person claiming again and again meets the per-person rate limit (429) first;
        # the limit_reached run lifts it to measure that answer.
        env = _xfq_env(per_person_limit=mode != "same")
        with embedded_server(workdir, env, server_name) as (port, ledger):
            name = f"embedded-{server_name}-{type_id}-{mode}-{credential}"
            load = _claims(args, name, port, type_id, mode, tokens, credential)
        return _checked(load, ledger)

    return run


def on_redis(
    type_id: str,
    mode: str,
    workers: int,
    window_ms: float = 0.0,
    credential: str = "bearer",
    clock: str = OPENS_AT,
) -> Callable[[argparse.Namespace, Path], Load]:
    def run(args: argparse.Namespace, workdir: Path) -> Load:
        tokens = tokens_file(args.people if mode == "spread" else 1)
        env = _xfq_env(per_person_limit=mode != "same") | {
            "XFQ_REDIS_WINDOW_MS": str(window_ms),
            "XFQ_SIMULATED_START": clock,
        }
        with redis_server(workdir) as (_redis_port, url):
            with redis_xfq_server(workdir, env, url, workers) as (port, ledger):
                window = f"-window{window_ms:g}ms" if window_ms else ""
                early = "-early" if clock != OPENS_AT else ""
                name = f"redis-{workers}w-{type_id}-{mode}{window}{early}-{credential}"
                load = _claims(args, name, port, type_id, mode, tokens, credential)
            # What the persisters had not moved when the server stopped is moved now, then
            # every check holds or the run fails: Redis against the ledger included.
            reconcile(ledger, "--redis", url, "--repair")
            return _checked(load, ledger, "--redis", url)

    return run


def on_redis_postgres(
    credential: str, server_name: str = "granian"
) -> Callable[[argparse.Namespace, Path], Load]:
    """The issue's deployment: Redis, a PostgreSQL ledger, `xfq persist` as a process of its
    own (the 2 API workers run no persister thread, so its inserts take no worker's GIL)."""

    def run(args: argparse.Namespace, workdir: Path) -> Load:
        sys.path.insert(0, str(ROOT / "tests"))
        from servers.postgres_server import PostgresServer

        tokens = tokens_file(args.people)
        env = _xfq_env() | {"XFQ_REDIS_PERSISTER": "false"}
        with PostgresServer() as pg, redis_server(workdir) as (_redis_port, url):
            ledger, port = pg.url(), free_port()
            command = [python(), "-m", "xfq", "serve", "--spec", str(SPEC), "--postgres", ledger,
                       "--port", str(port), "--redis", url, "--workers", "2",
                       "--server", server_name]  # fmt: skip
            serving = server(command, port, "xfq serve --redis --postgres", env, workers=2)
            with serving, persister(url, ledger):
                name = f"redis-pg-2w-{server_name}-plenty-spread-{credential}"
                load = _claims(args, name, port, "plenty", "spread", tokens, credential)
            reconcile(ledger, "--redis", url, "--repair")
            return _checked(load, ledger, "--redis", url)

    return run


@contextmanager
def persister(redis_url: str, ledger: str) -> Iterator[None]:
    command = [python(), "-m", "xfq", "persist", "--redis", redis_url, "--postgres", ledger]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=ROOT)
    try:
        yield
    finally:
        stop(process)


def conventional(args: argparse.Namespace, workdir: Path) -> Load:
    """One PostgreSQL transaction per claim (benchmarks/conventional_pg.py), 2 uvicorn workers."""
    sys.path.insert(0, str(ROOT / "tests"))
    from servers.postgres_server import PostgresServer

    with PostgresServer() as pg:
        url = pg.url()
        script = str(HERE / "conventional_pg.py")
        subprocess.run([python(), script, "setup", url, "--spec", str(SPEC)], check=True)
        port = free_port()
        command = [python(), script, "serve", url, "--workers", "2", "--port", str(port)]
        command += ["--spec", str(SPEC)]
        with server(command, port, "conventional_pg serve"):
            tokens = tokens_file(args.people)
            load = _claims(args, "conventional-pg-2w", port, "plenty", "spread", tokens)
        check = [python(), script, "check", url, "--spec", str(SPEC)]
        done = subprocess.run(check, capture_output=True, text=True, check=False)
        ok = done.returncode == 0
        load.notes.append("stock and limits checked" if ok else "LEDGER CHECK FAILED")
        if not ok:
            print(done.stdout + done.stderr, file=sys.stderr)
        return load


def store_ceiling(args: argparse.Namespace, workdir: Path) -> Load:
    """redis-benchmark calling the claim script itself, one claim a call (the store's ceiling)."""
    from xfq.adapters.redis.connect import sync_client
    from xfq.adapters.redis.loader import load_campaign
    from xfq.adapters.redis.scripts import CLAIM_BATCH
    from xfq.adapters.sql.ledger import SqlLedger
    from xfq.adapters.sql.times import to_us
    from xfq.spec import load_campaign as load_spec

    campaign = load_spec(SPEC)
    with redis_server(workdir) as (port, url):
        redis = sync_client(url, cluster=False)
        ledger = SqlLedger(f"sqlite:///{workdir / 'store-ceiling.db'}")
        opens_at = campaign.rounds[0].opens_at
        ledger.install_campaign(campaign, SPEC.read_text(encoding="utf-8"), opens_at)
        layout = load_campaign(redis, campaign, ledger, 1)
        ledger.close()
        sha = redis.script_load(CLAIM_BATCH)
        # One claim a call: [now, person, key, type, eligible, voucher, valid from, until] (µs);
        # redis-benchmark puts a random number for each __rand_int__.
        now, until = str(to_us(opens_at)), str(to_us(opens_at) + 7 * 86_400_000_000)
        claim = json.dumps(
            [[now, "p__rand_int__", "k__rand_int__", "plenty", "1", "v__rand_int__", now, until]]
        )
        requests = str(int(args.seconds * 30_000))
        command = ["redis-benchmark", "-p", str(port), "-c", "50", "-n", requests,
                   "-r", "100000000", "-q", "EVALSHA", sha, "1",
                   layout.stream(0), layout.tag(0), claim]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"([\d.]+) requests per second, p50=([\d.]+) msec", out)
    if found is None:
        raise RuntimeError(f"redis-benchmark printed no rate:\n{out}")
    return Load("redis-script (redis-benchmark)", float(found.group(1)), float(found.group(2)), 0.0)


BENCHES = [
    Bench("ceiling-1w", "raw ASGI hello-world, uvicorn, 1 worker", ceiling("uvicorn", 1)),
    Bench("ceiling-2w", "raw ASGI hello-world, uvicorn, 2 workers", ceiling("uvicorn", 2)),
    Bench("granian-1w", "raw ASGI hello-world, granian, 1 worker", ceiling("granian", 1)),
    Bench("granian-2w", "raw ASGI hello-world, granian, 2 workers", ceiling("granian", 2)),
    Bench(
        "granian-rsgi-1w",
        "the same answer under granian's RSGI interface, 1 worker",
        ceiling("granian-rsgi", 1),
    ),
    Bench(
        "granian-rsgi-2w",
        "the same answer under granian's RSGI interface, 2 workers",
        ceiling("granian-rsgi", 2),
    ),
    Bench(
        "embedded",
        "embedded engine, 1 process, SQLite group commit: issued path (a new person each)",
        embedded("plenty", "spread"),
    ),
    Bench(
        "embedded-granian",
        "embedded engine under granian (1 worker process): issued path",
        embedded("plenty", "spread", "granian"),
    ),
    Bench(
        "embedded-pass",
        "as `embedded`, each person claiming with the claim pass got before the opening",
        embedded("plenty", "spread", credential="pass"),
    ),
    Bench(
        "embedded-granian-pass",
        "as `embedded-granian`, with claim passes",
        embedded("plenty", "spread", "granian", credential="pass"),
    ),
    Bench(
        "embedded-granian-pass-asgi",
        "as `embedded-granian-pass`, granian's ASGI interface",
        embedded("plenty", "spread", "granian-asgi", credential="pass"),
    ),
    Bench(
        "embedded-sold-out",
        "embedded engine: a type of one voucher, every later claim sold_out",
        embedded("one", "spread"),
    ),
    Bench(
        "embedded-sold-out-pass",
        "as `embedded-sold-out`, with claim passes (as at an opening: no signature to verify)",
        embedded("one", "spread", credential="pass"),
    ),
    Bench(
        "redis",
        "Redis engine (appendfsync always), 2 granian workers, persisters into SQLite: issued",
        on_redis("plenty", "spread", 2),
    ),
    Bench(
        "redis-pass",
        "as `redis`, each person claiming with the claim pass got before the opening",
        on_redis("plenty", "spread", 2, credential="pass"),
    ),
    Bench(
        "redis-pg",
        "Redis engine, PostgreSQL ledger, `xfq persist` in its own process, 2 granian workers",
        on_redis_postgres("bearer"),
    ),
    Bench(
        "redis-pg-pass",
        "as `redis-pg`, with claim passes",
        on_redis_postgres("pass"),
    ),
    Bench(
        "redis-pg-pass-asgi",
        "as `redis-pg-pass`, granian's ASGI interface (the claim through ASGI's messages)",
        on_redis_postgres("pass", "granian-asgi"),
    ),
    Bench(
        "redis-pg-pass-uvicorn",
        "as `redis-pg-pass`, 2 uvicorn workers instead of granian",
        on_redis_postgres("pass", "uvicorn"),
    ),
    Bench(
        "redis-window-1ms",
        "as `redis`, each worker gathering claims for up to 1 ms before its Redis call",
        on_redis("plenty", "spread", 2, window_ms=1.0),
    ),
    Bench(
        "redis-window-3ms",
        "as `redis`, gathering for up to 3 ms",
        on_redis("plenty", "spread", 2, window_ms=3.0),
    ),
    Bench(
        "redis-sold-out",
        "Redis engine, 2 workers: a type of one voucher, later claims sold_out from memory",
        on_redis("one", "spread", 2),
    ),
    Bench(
        "redis-sold-out-pass",
        "as `redis-sold-out`, with claim passes",
        on_redis("one", "spread", 2, credential="pass"),
    ),
    Bench(
        "redis-not-open-pass",
        "Redis engine, 2 workers, the clock half an hour before the opening: not_open from memory",
        on_redis("plenty", "spread", 2, credential="pass", clock=EARLY),
    ),
    Bench(
        "redis-limit",
        "Redis engine, 2 workers: one person claiming again and again, limit_reached",
        on_redis("plenty", "same", 2),
    ),
    Bench(
        "store-ceiling",
        "redis-benchmark -c 50 of the claim script alone, appendfsync always (no HTTP)",
        store_ceiling,
    ),
    Bench(
        "conventional",
        "the conventional design: one PostgreSQL transaction per claim, 2 uvicorn workers",
        conventional,
    ),
    Bench(
        "embedded-limit",
        "embedded engine: one person claiming again and again, limit_reached",
        embedded("plenty", "same"),
    ),
]


# design.md's targets measurable in this run: (target, run, the run it is compared with, goal)
TARGETS = (
    ("Redis issued ≥ 0.6 × 2-worker ceiling", "redis", "granian-2w", 0.6),
    ("  the same with claim passes", "redis-pass", "granian-2w", 0.6),
    ("  on PostgreSQL, persister apart, passes", "redis-pg-pass", "granian-2w", 0.6),
    ("  the same, against the RSGI hello-world", "redis-pg-pass", "granian-rsgi-2w", 0.6),
    ("  the same, granian's ASGI interface", "redis-pg-pass-asgi", "granian-2w", 0.6),
    ("  the same, uvicorn workers", "redis-pg-pass-uvicorn", "ceiling-2w", 0.6),
    ("Redis sold_out ≥ 1.0 × 2-worker ceiling", "redis-sold-out", "granian-2w", 1.0),
    ("  the same with claim passes", "redis-sold-out-pass", "granian-2w", 1.0),
    ("  the same, against the RSGI hello-world", "redis-sold-out-pass", "granian-rsgi-2w", 1.0),
    ("Redis not_open ≥ 1.0 × 2-worker ceiling", "redis-not-open-pass", "granian-2w", 1.0),
    ("  the same, against the RSGI hello-world", "redis-not-open-pass", "granian-rsgi-2w", 1.0),
    ("Redis limit_reached ≥ 1.0 × 2-worker ceiling", "redis-limit", "granian-2w", 1.0),
    ("Redis issued ≥ 10 × the conventional design", "redis", "conventional", 10.0),
    ("  the same with claim passes", "redis-pass", "conventional", 10.0),
    ("  on PostgreSQL, persister apart, passes", "redis-pg-pass", "conventional", 10.0),
    ("  the same, uvicorn workers", "redis-pg-pass-uvicorn", "conventional", 10.0),
    ("embedded (granian) issued ≥ 0.5 × its ceiling", "embedded-granian", "granian-1w", 0.5),
    ("  the same with claim passes", "embedded-granian-pass", "granian-1w", 0.5),
    ("  the same, against the RSGI hello-world", "embedded-granian-pass", "granian-rsgi-1w", 0.5),
    ("  the same, granian's ASGI interface", "embedded-granian-pass-asgi", "granian-1w", 0.5),
    ("embedded issued ≥ 0.5 × 1-worker ceiling", "embedded", "ceiling-1w", 0.5),
    ("  the same with claim passes", "embedded-pass", "ceiling-1w", 0.5),
    ("sold_out ≥ 1.0 × 1-worker ceiling (embedded)", "embedded-sold-out", "ceiling-1w", 1.0),
    ("  the same with claim passes", "embedded-sold-out-pass", "ceiling-1w", 1.0),
    ("limit_reached ≥ 1.0 × 1-worker ceiling (embedded)", "embedded-limit", "ceiling-1w", 1.0),
)


def ratios(results: dict[str, Load]) -> list[tuple[str, str, float | None, float]]:
    """(target, measured as, ratio or None when a run is missing, goal)."""
    return [
        (target, f"{a} / {b}", results[a].rps / results[b].rps if a in results and b in results
         and results[b].rps else None, goal)
        for target, a, b, goal in TARGETS
    ]  # fmt: skip


def report(results: dict[str, Load], args: argparse.Namespace) -> bool:
    print_loads(results, args.connections, args.seconds, WARMUP_S)
    print("\ntargets (design.md):")
    for target, how, value, goal in ratios(results):
        shown = (
            "not run" if value is None else f"{value:.2f} ({'met' if value >= goal else 'NOT met'})"
        )
        print(f"  {target:<52} {how:<34} {shown}")
    failed = [load.name for load in results.values() if "LEDGER CHECK FAILED" in load.notes]
    if failed:
        print(f"\nFAILED: the ledger check failed after {', '.join(failed)}")
    print_errors(results)
    return not failed


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--people", type=int, default=400_000, help="distinct citizens' tokens")
    parser.add_argument(
        "--pass-people", type=int, default=150_000, help="claim passes fetched for the -pass runs"
    )
    args = parser.parse_args()
    if args.pass_people > args.people:
        parser.error("--pass-people: at most --people (each pass is got for one of the tokens)")
    chosen = [b for b in BENCHES if not args.only or b.name in args.only.split(",")]
    tokens_file(args.people)
    results: dict[str, Load] = {}
    with tempfile.TemporaryDirectory(prefix="xfq-bench-") as tmp:
        for bench in chosen:
            print(f"… {bench.name}: {bench.what}", flush=True)
            results[bench.name] = bench.run(args, Path(tmp))
    sys.exit(0 if report(results, args) else 1)


if __name__ == "__main__":
    main()
