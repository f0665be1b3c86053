"""The DiD estimator recovers a known effect from the spending model, within its interval.

The ledger here is DuckDB's own in-memory database attached as `ledger` with the two tables
the estimator reads, filled with winners and their redemptions; the feed is the simulation's
spending model with a chosen true effect.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from xfq.domain.errors import ReportInputError
from xfq.reports.causal import estimate
from xfq.reports.spending_feed import attach_feed
from xfq.simulation.spending import make_feed, write_feed

OPENING = date(2022, 3, 5)
DISCOUNTS_FEN = (600, 4000, 5000, 8000)


@pytest.fixture
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    con.execute("ATTACH ':memory:' AS ledger")
    con.execute("CREATE TABLE ledger.vouchers (id VARCHAR, person_id VARCHAR, round_id VARCHAR)")
    con.execute(
        "CREATE TABLE ledger.redemptions (voucher_id VARCHAR, state VARCHAR, discount_fen BIGINT)"
    )
    yield con
    con.close()


def city(
    db: duckdb.DuckDBPyConnection, winners: int, others: int, seed: int
) -> tuple[list[str], dict[str, list[tuple[date, int]]]]:
    """Winners with one voucher each, most of them redeemed in the validity week."""
    rng = random.Random(seed)
    people = [f"p{i:06d}" for i in range(winners + others)]
    redeemed: dict[str, list[tuple[date, int]]] = {}
    vouchers: list[str] = []
    used: list[tuple[str, int]] = []
    for i, person in enumerate(people[:winners]):
        vouchers.append(person)
        redeemed[person] = []
        if rng.random() < 0.85:
            discount = rng.choice(DISCOUNTS_FEN)
            used.append((f"v{i}", discount))
            redeemed[person].append((OPENING + timedelta(days=rng.randrange(7)), discount))
    db.execute(
        "INSERT INTO ledger.vouchers SELECT 'v' || (i - 1), p, 'r6' "
        "FROM (SELECT unnest($1) AS p, generate_subscripts($1, 1) AS i)",
        [vouchers],
    )
    if used:
        db.execute(
            "INSERT INTO ledger.redemptions SELECT unnest($1), 'posted', unnest($2)",
            [[v for v, _ in used], [d for _, d in used]],
        )
    return people, redeemed


@pytest.mark.parametrize("true_effect", [0.0, 3.0, 5.8])
def test_the_estimate_covers_the_true_extra_spending_per_yuan(
    db: duckdb.DuckDBPyConnection, tmp_path: Path, true_effect: float
) -> None:
    people, redeemed = city(db, winners=3000, others=3000, seed=6)
    feed = make_feed(people, redeemed, OPENING, weeks=2, seed=11, extra_per_yuan=true_effect)
    write_feed(feed, tmp_path / "feed.parquet")
    attach_feed(db, tmp_path / "feed.parquet")

    found = estimate(db, "r6", OPENING, weeks=2, draws=300, seed=1)

    interval = found.extra_per_yuan
    assert interval.low <= true_effect <= interval.high, interval
    assert interval.high - interval.low < 1.5  # informative, not "anything goes"
    assert found.winners == 3000 and found.others == 3000


def test_a_wrong_effect_is_outside_the_interval(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    people, redeemed = city(db, winners=3000, others=3000, seed=7)
    feed = make_feed(people, redeemed, OPENING, weeks=2, seed=12, extra_per_yuan=3.0)
    write_feed(feed, tmp_path / "feed.csv")  # CSV this time
    attach_feed(db, tmp_path / "feed.csv")

    interval = estimate(db, "r6", OPENING, weeks=2, draws=300, seed=2).extra_per_yuan

    assert not interval.low <= 0.0 <= interval.high  # the vouchers did something
    assert not interval.low <= 10.0 <= interval.high  # ... but not the gross ~10×


def test_the_placebo_sees_winners_pulling_away_before_the_opening(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Parallel trends broken on purpose: winners' spending rises in the week before opening."""
    people, redeemed = city(db, winners=3000, others=3000, seed=9)
    feed = make_feed(people, redeemed, OPENING, weeks=2, seed=13, extra_per_yuan=3.0)
    late_pre = (feed.day >= np.datetime64(OPENING - timedelta(days=7))) & (
        feed.day < np.datetime64(OPENING)
    )
    winner_rows = feed.person < 3000
    feed.spend_fen[late_pre & winner_rows] += 1500
    write_feed(feed, tmp_path / "feed.parquet")
    attach_feed(db, tmp_path / "feed.parquet")

    placebo = estimate(db, "r6", OPENING, weeks=2, draws=300, seed=3).placebo_per_day_fen

    assert (
        placebo is not None and placebo.low > 0
    )  # the report shows a pre-trend: the causal figure is not to be trusted


def test_a_feed_without_people_who_failed_is_refused(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    people, redeemed = city(db, winners=50, others=0, seed=8)
    write_feed(make_feed(people, redeemed, OPENING, 2, 1), tmp_path / "feed.parquet")
    attach_feed(db, tmp_path / "feed.parquet")
    with pytest.raises(ReportInputError, match="2 people who failed"):
        estimate(db, "r6", OPENING, weeks=2, draws=10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("person_id,day\np1,2022-03-01\n", "missing column(s) spend_fen"),
        ("person_id,day,spend_fen\np1,2022-03-01,-5\n", "negative spend_fen"),
        ("person_id,day,spend_fen\np1,2022-03-01,5\np1,2022-03-01,7\n", "two rows for day"),
        ("person_id,day,spend_fen\np1,yesterday,5\n", "spending feed"),
        ("person_id,day,spend_fen\np1,2022-03-01,\n", "empty value"),
    ],
)
def test_a_malformed_feed_gets_a_message_saying_what_is_wrong(
    db: duckdb.DuckDBPyConnection, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReportInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        attach_feed(db, path)


def test_a_feed_of_another_format_is_refused(db: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ReportInputError, match=r"expected a \.csv or \.parquet file"):
        attach_feed(db, path)


def test_one_week_each_side_also_recovers_the_effect(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """One week before cannot be split in whole weeks: no placebo rather than a biased one."""
    people, redeemed = city(db, winners=3000, others=3000, seed=10)
    feed = make_feed(people, redeemed, OPENING, weeks=1, seed=14, extra_per_yuan=3.0)
    write_feed(feed, tmp_path / "feed.parquet")
    attach_feed(db, tmp_path / "feed.parquet")

    found = estimate(db, "r6", OPENING, weeks=1, draws=300, seed=4)

    assert found.extra_per_yuan.low <= 3.0 <= found.extra_per_yuan.high
    assert found.placebo_per_day_fen is None
