"""Daily spending of the synthetic city, with a known true effect of the vouchers.

Each person has a usual level of daily spending (log-normal; people who won spend more to begin
with, as keen shoppers do), a weekend bump, a city-wide rise after the opening day that hits
winners and others alike (the season, 三八 sales), and day-to-day noise. On the day a winner
redeems a voucher they spend `extra_per_yuan` × its discount more than they otherwise would:
that is the true causal leverage an estimator should recover. The feed follows the schema of
`xfq.reports.spending_feed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt

from xfq.domain.campaign import Campaign, Round

TRUE_EXTRA_PER_YUAN = 3.0
USUAL_DAILY_FEN = 6_000  # median usual spending of a person who failed
WINNERS_LEVEL = 1.3  # winners' usual spending relative to the others'
CITY_RISE_FEN = 800  # per day after the opening, for everyone
WEEKEND = 1.4


@dataclass(frozen=True)
class Feed:
    people: tuple[str, ...]
    person: npt.NDArray[np.int64]  # row → index into people
    day: npt.NDArray[np.datetime64]
    spend_fen: npt.NDArray[np.int64]


def make_feed(
    people: Sequence[str],
    redeemed: Mapping[str, Sequence[tuple[date, int]]],
    opening_day: date,
    weeks: int,
    seed: int,
    extra_per_yuan: float = TRUE_EXTRA_PER_YUAN,
) -> Feed:
    """Spending of `people` on each day of `weeks` before and after `opening_day`.

    `redeemed` maps a winner to the (local day, discount fen) of each of their redemptions;
    winners are the keys, so a winner who redeemed nothing maps to an empty sequence.
    """
    rng = np.random.default_rng(seed)
    start = opening_day - timedelta(weeks=weeks)
    days = np.arange(np.datetime64(start), np.datetime64(opening_day + timedelta(weeks=weeks)))
    won = np.array([p in redeemed for p in people])
    usual = USUAL_DAILY_FEN * rng.lognormal(0.0, 0.5, len(people)) * np.where(won, WINNERS_LEVEL, 1)
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
    day_factor = np.where(weekday >= 5, WEEKEND, 1.0)
    rise = np.where(days >= np.datetime64(opening_day), CITY_RISE_FEN, 0)
    noise = rng.gamma(4.0, 0.25, (len(people), len(days)))  # mean 1
    spend = usual[:, None] * day_factor[None, :] * noise + rise[None, :]
    index = {p: i for i, p in enumerate(people)}
    for person, uses in redeemed.items():
        for day, discount_fen in uses:
            column = (day - start).days
            if person in index and 0 <= column < len(days):
                spend[index[person], column] += extra_per_yuan * discount_fen
    return Feed(
        people=tuple(people),
        person=np.repeat(np.arange(len(people), dtype=np.int64), len(days)),
        day=np.tile(days, len(people)),
        spend_fen=np.rint(spend).astype(np.int64).ravel(),
    )


def write_feed(feed: Feed, path: Path) -> None:
    """Write the feed as Parquet (or CSV when `path` ends in .csv)."""
    db = duckdb.connect(":memory:")
    try:
        db.execute("SET enable_progress_bar = false")
        # Numbers only cross into DuckDB (strings and datetime64[D] arrays convert slowly or not
        # at all): person indices and days since 1970, turned into ids and dates in SQL.
        epoch_days = feed.day.astype("datetime64[D]").view("int64")
        columns = {"ix": feed.person, "d": epoch_days, "spend_fen": feed.spend_fen}
        db.register("raw", columns)
        ids = np.array(feed.people, dtype=np.str_)
        db.register("people", {"ix": np.arange(len(ids), dtype=np.int64), "person_id": ids})
        db.execute(
            "CREATE VIEW feed AS SELECT p.person_id, DATE '1970-01-01' + r.d::INTEGER AS day, "
            "r.spend_fen FROM raw r JOIN people p USING (ix)"
        )
        kind = "FORMAT csv, HEADER" if path.suffix.lower() == ".csv" else "FORMAT parquet"
        target = "'" + str(path).replace("'", "''") + "'"
        db.execute(f"COPY (SELECT * FROM feed) TO {target} ({kind})")
    finally:
        db.close()


def redemptions_by_winner(
    ledger: duckdb.DuckDBPyConnection, round_id: str, offset_us: int
) -> dict[str, list[tuple[date, int]]]:
    """Winner → (local day, discount fen) of each posted redemption, from the attached ledger."""
    rows = ledger.execute(
        """
        SELECT v.person_id, (r.redeemed_at_us + $offset) // 86400000000, r.discount_fen
        FROM ledger.vouchers v LEFT JOIN ledger.redemptions r
          ON r.voucher_id = v.id AND r.state = 'posted'
        WHERE v.round_id = $round
        """,
        {"round": round_id, "offset": offset_us},
    ).fetchall()
    found: dict[str, list[tuple[date, int]]] = {}
    for person, day, discount_fen in rows:
        uses = found.setdefault(person, [])
        if day is not None:
            uses.append((date(1970, 1, 1) + timedelta(days=int(day)), int(discount_fen)))
    return found


DEMO_PANEL = 50_000  # people in the demo's feed: a payment app's panel, not the whole city


def write_demo_feed(
    ledger: Path | str, campaign: Campaign, rnd: Round, people: Sequence[str], path: Path, seed: int
) -> Path:
    """The demo's spending feed: winners and people who failed, 2 weeks each side of opening."""
    from xfq.reports.figures import local_offset_us
    from xfq.reports.ledger_db import connect

    db = connect(str(ledger))
    try:
        redeemed = redemptions_by_winner(db, rnd.id, local_offset_us(campaign, rnd))
    finally:
        db.close()
    panel = list(people[:DEMO_PANEL])
    in_panel = set(panel)
    opening_day = rnd.opens_at.astimezone(campaign.tz).date()
    winners = {p: uses for p, uses in redeemed.items() if p in in_panel}
    write_feed(make_feed(panel, winners, opening_day, weeks=2, seed=seed), path)
    return path
