"""Overload: what one embedded xfq server serves, then ten times the clients it serves them to.

    .venv/bin/python benchmarks/overload.py [--seconds 8] [--connections 64] [--factor 10]

1. capacity: wrk -c CONNECTIONS on the issued path (each request a new person), which saturates
   the server; its claims/s is what this machine serves.
2. overload: FACTOR × CONNECTIONS clients, each sending its next claim as soon as it has an
   answer (how phones behave at the opening second), with the default admission bounds;
3. the same with the bounds lifted (nothing shed), to show what the shedding buys.
Each run prints the answers by code, p50/p99 and the share shed (`overloaded`); every ledger is
reconciled afterwards. Results: RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from claims import WARMUP_S, _xfq_env, embedded_server, reconcile
from harness import Load, tokens_file, wrk

UNBOUNDED = {"XFQ_CLAIM_MAX_IN_FLIGHT": "100000000", "XFQ_CLAIM_MAX_WAIT_MS": "100000000"}


@dataclass(frozen=True)
class Run:
    name: str
    connections: int
    env: dict[str, str]


def _measure(run: Run, args: argparse.Namespace, tokens: Path, workdir: Path) -> Load:
    env = {**_xfq_env(), **run.env}
    load_env = {"XFQ_BENCH_TOKENS": str(tokens), "XFQ_BENCH_TYPE": "plenty"}
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    with embedded_server(workdir, env) as (port, ledger):
        warm = {**load_env, "XFQ_BENCH_RUN": "warm", "XFQ_BENCH_OFFSET": str(args.people // 2)}
        wrk("warm", port, "/v1/claims", WARMUP_S, args.connections, warm)
        load = wrk(run.name, port, "/v1/claims", args.seconds, run.connections, load_env)
    ok, report = reconcile(ledger)
    load.notes.append(f"load average {load_before:.1f}")
    load.notes.append("ledger reconciled" if ok else "LEDGER CHECK FAILED:\n" + report)
    return load


def _row(run: Run, load: Load) -> str:
    total = sum(load.codes.values()) or 1
    shed = load.codes.get("overloaded", 0) / total
    mix = ", ".join(f"{code} {n}" for code, n in sorted(load.codes.items()))
    return (
        f"| {run.name} | {run.connections} | {load.rps:,.0f} | {load.p50_ms:.1f} | "
        f"{load.p99_ms:.1f} | {shed:.0%} | {mix} | {load.errors} | {'; '.join(load.notes)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--people", type=int, default=400_000, help="distinct citizens' tokens")
    args = parser.parse_args()
    tokens = tokens_file(args.people)
    many = args.connections * args.factor
    runs = [
        Run("capacity", args.connections, {}),
        Run(f"{args.factor}x clients, shedding (defaults)", many, {}),
        Run(f"{args.factor}x clients, nothing shed", many, UNBOUNDED),
    ]
    print("| run | connections | answers/s | p50 ms | p99 ms | shed | answers | errors | |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="xfq-overload-") as workdir:
        for run in runs:
            print(_row(run, _measure(run, args, tokens, Path(workdir))), flush=True)


if __name__ == "__main__":
    main()
