"""`xfq lottery verify`: re-run a published draw and say whether its winners match."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from xfq.domain.lottery import LotteryFileError, parse_record, verify

lottery_app = typer.Typer(help="Lottery rounds: check a published draw yourself.")
EXIT_MISMATCH, EXIT_UNREADABLE = 1, 2


@lottery_app.callback()
def _lottery() -> None:
    return None


@lottery_app.command("verify")
def verify_command(
    draw: Annotated[Path, typer.Option(help="The published draw file (draw.json).")],
    registrations: Annotated[
        Path, typer.Option(help="The published frozen registration list (registrations.txt).")
    ],
    commitment: Annotated[
        str | None,
        typer.Option(help="The seed's SHA-256 as published before registration closed."),
    ] = None,
    registrations_sha256: Annotated[
        str | None, typer.Option(help="The list's SHA-256 as published when it was frozen.")
    ] = None,
) -> None:
    """Re-run the draw from the published files; exit 0 if the winners match, 1 if not."""
    console = Console(highlight=False)
    try:
        record = parse_record(draw.read_text(encoding="utf-8"))
        listed = registrations.read_bytes()
    except (OSError, UnicodeDecodeError, LotteryFileError) as error:
        Console(stderr=True).print(f"xfq lottery verify: {error}", markup=False)
        raise typer.Exit(EXIT_UNREADABLE) from None
    checks = verify(record, listed, commitment, registrations_sha256)
    g = record.given
    console.print(
        f"draw of round {g.round_id} ({g.campaign_id}): {record.registrations} registration(s),"
        f" {len(record.winners)} winner(s)"
    )
    for check in checks:
        mark = Text("ok  ", style="green") if check.ok else Text("FAIL", style="bold red")
        console.print(mark, Text(f"{check.what}: {check.detail}"))
    if all(c.ok for c in checks):
        console.print("The winners match: this draw follows from the published seed and list.")
        return
    console.print(Text("The draw does NOT verify.", style="bold red"))
    raise typer.Exit(EXIT_MISMATCH)
