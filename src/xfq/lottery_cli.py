"""`xfq lottery verify` re-runs a published draw and says whether its winners match;
`xfq lottery publish` writes a round's published files from a ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from xfq.domain.lottery import LotteryFileError, parse_record, registration_list, verify
from xfq.services.lottery import published_state

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
    console = Console(highlight=False, soft_wrap=True)  # hashes stay on one line
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


@lottery_app.command("publish")
def publish_command(
    ledger: Annotated[Path, typer.Argument(help="SQLite ledger file.")],
    round_id: Annotated[str, typer.Argument(help="The lottery round.")],
    out: Annotated[Path, typer.Option(help="Where to write the files.")] = Path("."),
) -> None:
    """Write a round's published files from a ledger: registrations.txt once frozen, draw.json
    once drawn; print the hashes the round page shows."""
    from xfq.adapters.sql.ledger import stored_spec
    from xfq.adapters.sql.lottery import SqlLotteryStore
    from xfq.adapters.sql.schema import create_engine, sqlite_url
    from xfq.spec import parse_campaign

    console = Console(highlight=False, soft_wrap=True)  # hashes stay on one line
    if not ledger.is_file():
        Console(stderr=True).print(f"xfq lottery publish: no ledger file at {ledger}")
        raise typer.Exit(EXIT_UNREADABLE)
    engine = create_engine(sqlite_url(ledger))
    spec_text = stored_spec(engine)
    if spec_text is None:
        Console(stderr=True).print(f"xfq lottery publish: {ledger} holds no campaign")
        raise typer.Exit(EXIT_UNREADABLE)
    campaign = parse_campaign(spec_text, f"{ledger} (stored spec)")
    store = SqlLotteryStore(engine)
    state = published_state(store, campaign, round_id)
    if state is None:
        console.print(f"round {round_id}: no seed committed yet; nothing is published")
        return
    console.print(f"round {round_id}: seed SHA-256 {state.seed_sha256}")
    out.mkdir(parents=True, exist_ok=True)
    if state.registrations_sha256 is not None:
        listed = registration_list(store.registrations(round_id))
        (out / "registrations.txt").write_bytes(listed)
        console.print(
            f"  registrations.txt ({state.registrations}) SHA-256 {state.registrations_sha256}"
        )
    if state.draw_json is not None:
        (out / "draw.json").write_text(state.draw_json, encoding="utf-8")
        console.print(f"  draw.json, seed {state.seed_hex}")
