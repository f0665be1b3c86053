"""`xfq rehearse`: the command around xfq.rehearsal, and how its figures are printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xfq.demo import EXAMPLE
from xfq.rehearsal import Rehearsal, rehearse

console = Console()


def rehearse_command(
    people: Annotated[int, typer.Option(min=1, help="Simulated citizens.")] = 1_000_000,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes.")] = 2,
    connections: Annotated[int, typer.Option(min=1, help="Keep-alive connections.")] = 256,
    bound: Annotated[float, typer.Option(help="Cut the wave after this many seconds.")] = 300.0,
    spec: Annotated[Path | None, typer.Option(help="Campaign file.")] = None,
    round_id: Annotated[str, typer.Option("--round", help="Round to rehearse.")] = "r6",
    workdir: Annotated[Path, typer.Option(help="Ledger and Redis data.")] = Path("var/rehearse"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic city.")] = 2022,
    arrival_scale: Annotated[
        float, typer.Option(help="Scale of arrival times (1: mean 4 s after the opening).")
    ] = 1.0,
    credential: Annotated[
        str,
        typer.Option(
            help="What citizens claim with: 'pass' (a claim pass each got before the opening) "
            "or 'bearer' (the identity provider's token)."
        ),
    ] = "pass",
) -> None:
    """The round's opening against a deployment started on loopback (Redis with appendfsync
    always, N granian workers): sell-out time, wave time, p50/p99, answers, errors, memory, and
    reconciliation of the ledger against Redis afterwards. Exit 1 on an error or a failed check."""
    if credential not in ("pass", "bearer"):
        raise typer.BadParameter("'pass' or 'bearer'", param_hint="--credential")
    done = rehearse(
        spec or EXAMPLE,
        round_id,
        people,
        workers,
        connections,
        bound,
        workdir,
        seed,
        console.print,
        arrival_scale,
        credential,
    )
    print_rehearsal(done)
    if not done.reconcile_ok or done.wave.errors or (done.passes and done.passes.errors):
        raise typer.Exit(1)


def print_rehearsal(done: Rehearsal) -> None:
    w = done.wave
    table = Table(title="Rehearsal", show_header=False)
    table.add_row("citizens", f"{w.people:,}")
    table.add_row("claim passes before the opening", _passes(done))
    late_s = (done.wave_clock - done.opens_at).total_seconds()
    table.add_row(
        "servers' clock at the wave's start",
        f"{done.wave_clock:%H:%M:%S}, the opening + {late_s:.1f} s (running at real speed)",
    )
    table.add_row("claim requests", f"{w.requests:,} ({w.requests / max(w.wave_s, 1e-9):,.0f}/s)")
    table.add_row("answers", ", ".join(f"{k} {v:,}" for k, v in w.answers.most_common()))
    table.add_row("HTTP statuses", ", ".join(f"{k} {v:,}" for k, v in sorted(w.statuses.items())))
    table.add_row("errors (5xx, transport)", f"{w.errors:,}")
    sold = max(w.sold_out_s.values()) if w.sold_out_s else None
    table.add_row(
        "sold out",
        f"{len(w.sold_out_s)} of {done.types} types, the last at {sold:.1f} s"
        if sold is not None
        else f"none of {done.types} types",
    )
    cut = " (cut by the bound)" if w.cut else ""
    table.add_row("whole wave", f"{w.wave_s:.1f} s{cut}")
    table.add_row("latency p50 / p99", f"{w.percentile_ms(50):.1f} / {w.percentile_ms(99):.1f} ms")
    processes = ", ".join(
        f"pid {pid}: {f.peak_mb:.0f} MB, {f.cpu_s:.1f} s"
        for pid, f in sorted(done.processes.items())
    )
    table.add_row("peak memory, CPU per process", processes)
    table.add_row("reconciled (Redis and ledger)", "yes" if done.reconcile_ok else "NO")
    console.print(table)
    if not done.reconcile_ok:
        console.print(done.reconcile_report, markup=False, highlight=False)


def _passes(done: Rehearsal) -> str:
    p = done.passes
    if p is None:
        return "none (claims with bearer tokens)"
    refused = ", ".join(f"{status} {n:,}" for status, n in sorted(p.refused.items()))
    return (
        f"{p.fetched:,} in {p.took_s:.1f} s ({p.fetched / max(p.took_s, 1e-9):,.0f}/s)"
        + (f", refused {refused}" if refused else "")
        + (f", errors {p.errors:,}" if p.errors else "")
        + (" (cut by the bound)" if p.cut else "")
    )
