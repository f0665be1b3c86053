"""Causal leverage: extra spending per yuan of subsidy, by difference-in-differences.

Winners (people holding a voucher of the round) are compared with people who tried and failed.
For each person, Δ = mean daily spend in the `weeks` after the opening day minus mean daily spend
in the `weeks` before it. The effect on a winner per day is mean(Δ winners) − mean(Δ others); the
extra spending per yuan of subsidy is that effect × days after ÷ the mean discount a winner
received (posted redemptions of the round). The 95 % interval is a percentile bootstrap that
resamples people (winners and others separately), so a person's days stay together. People are
read in id order, so the same feed and seed give the same interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import numpy.typing as npt

from xfq.domain.errors import ReportInputError
from xfq.reports.spending_feed import FEED_VIEW

BOOTSTRAP_DRAWS = 1000
CONFIDENCE = 0.95

METHOD = (
    "Difference-in-differences. For every person in the spending feed: mean daily spending in "
    "the weeks after the opening day minus the weeks before. Winners' mean change minus the mean "
    "change of people who tried and failed is the extra spending a voucher caused per winner per "
    "day; times the days after and divided by the mean discount a winner was paid, it is the "
    "extra spending per yuan of subsidy. 95% interval: percentile bootstrap over people "
    "(winners and others resampled separately)."
)
ASSUMPTIONS = (
    "Parallel trends: without vouchers, winners' spending would have changed by the same number "
    "of yuan per day as the others' (levels may differ; the pre-period placebo below tests it).",
    "Winning did not change what the others spent (no spill-over to the comparison group), and "
    "everyone in the feed other than a winner tried and failed.",
    "The feed covers each person's spending, not only what was paid with vouchers; pulled-"
    "forward purchases after the window are not seen, so the window should cover the validity.",
    "People are independent of each other (the bootstrap resamples people).",
)

_PER_PERSON = f"""
WITH winners AS (
  SELECT v.person_id,
         sum(CASE WHEN r.state = 'posted' THEN r.discount_fen ELSE 0 END) AS subsidy_fen
  FROM ledger.vouchers v LEFT JOIN ledger.redemptions r ON r.voucher_id = v.id
  WHERE v.round_id = $round GROUP BY v.person_id
)
SELECT f.person_id, w.person_id IS NOT NULL AS winner, coalesce(w.subsidy_fen, 0) AS subsidy_fen,
  sum(CASE WHEN f.day >= $pre_start AND f.day < $placebo THEN f.spend_fen ELSE 0 END) AS early_fen,
  sum(CASE WHEN f.day >= $placebo AND f.day < $opening THEN f.spend_fen ELSE 0 END) AS late_fen,
  sum(CASE WHEN f.day >= $opening AND f.day < $post_end THEN f.spend_fen ELSE 0 END) AS post_fen
FROM {FEED_VIEW} f LEFT JOIN winners w ON w.person_id = f.person_id
GROUP BY ALL ORDER BY f.person_id
"""


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class CausalEstimate:
    opening_day: date
    weeks: int
    winners: int
    others: int
    subsidy_fen: int  # discount paid to the winners in the feed
    pre_mean_fen: tuple[float, float]  # mean daily spend before: (winners, others)
    post_mean_fen: tuple[float, float]  # ... after
    effect_per_day_fen: Interval  # extra spend per winner per day
    extra_per_yuan: Interval  # extra spending per yuan of subsidy
    # the same contrast between the earlier and later whole weeks before (None with one week)
    placebo_per_day_fen: Interval | None
    draws: int


@dataclass(frozen=True)
class _Panel:
    winner: npt.NDArray[np.bool_]
    subsidy: npt.NDArray[np.float64]
    early: npt.NDArray[np.float64]  # mean daily spend, first half of the weeks before
    late: npt.NDArray[np.float64]  # ... second half
    post: npt.NDArray[np.float64]  # ... the weeks after


def estimate(
    db: duckdb.DuckDBPyConnection,
    round_id: str,
    opening_day: date,
    weeks: int = 2,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> CausalEstimate:
    """DiD over the feed attached as `spending` (see spending_feed.attach_feed)."""
    if weeks < 1:
        raise ReportInputError("causal leverage: --weeks must be at least 1")
    panel = _panel(db, round_id, opening_day, weeks)
    days = 7 * weeks
    early_days = 7 * (weeks // 2)
    pre = (panel.early * early_days + panel.late * (days - early_days)) / days
    w, o = panel.winner, ~panel.winner
    stats = _Stats(panel.post - pre, panel.late - panel.early, panel.subsidy / days)
    point = stats.of(np.flatnonzero(w), np.flatnonzero(o))
    rng = np.random.default_rng(seed)
    winners, others = np.flatnonzero(w), np.flatnonzero(o)
    resampled = np.array(
        [
            stats.of(rng.choice(winners, winners.size), rng.choice(others, others.size))
            for _ in range(draws)
        ]
    )
    effect, per_yuan, placebo = (_percentiles(point[i], resampled[:, i]) for i in range(3))
    return CausalEstimate(
        opening_day=opening_day,
        weeks=weeks,
        winners=int(w.sum()),
        others=int(o.sum()),
        subsidy_fen=int(panel.subsidy[w].sum()),
        pre_mean_fen=(float(pre[w].mean()), float(pre[o].mean())),
        post_mean_fen=(float(panel.post[w].mean()), float(panel.post[o].mean())),
        effect_per_day_fen=effect,
        extra_per_yuan=per_yuan,
        placebo_per_day_fen=placebo if weeks >= 2 else None,  # 1 week: no whole weeks to split
        draws=draws,
    )


def _panel(db: duckdb.DuckDBPyConnection, round_id: str, opening_day: date, weeks: int) -> _Panel:
    pre_start = opening_day - timedelta(days=7 * weeks)
    # The placebo splits the weeks before in whole weeks, so both parts have the same weekdays
    # (a weekend bump in proportion to a person's level would otherwise look like a trend).
    early_days = 7 * (weeks // 2)
    params = {
        "round": round_id,
        "pre_start": pre_start,
        "placebo": pre_start + timedelta(days=early_days),
        "opening": opening_day,
        "post_end": opening_day + timedelta(days=7 * weeks),
    }
    cols = db.execute(_PER_PERSON, params).fetchnumpy()
    winner = np.asarray(cols["winner"], dtype=bool)
    if winner.sum() < 2 or (~winner).sum() < 2:
        raise ReportInputError(
            f"spending feed: needs at least 2 winners and 2 people who failed; "
            f"found {int(winner.sum())} and {int((~winner).sum())}"
        )
    return _Panel(
        winner=winner,
        subsidy=np.asarray(cols["subsidy_fen"], dtype=np.float64),
        early=np.asarray(cols["early_fen"], dtype=np.float64) / max(early_days, 1),
        late=np.asarray(cols["late_fen"], dtype=np.float64) / (7 * weeks - early_days),
        post=np.asarray(cols["post_fen"], dtype=np.float64) / (7 * weeks),
    )


@dataclass(frozen=True)
class _Stats:
    """The three contrasts of one (re)sample of winners and others, by row indices."""

    change: npt.NDArray[np.float64]  # after − before, per person per day
    placebo_change: npt.NDArray[np.float64]  # late − early half of the weeks before
    subsidy_per_day: npt.NDArray[np.float64]

    def of(self, w: npt.NDArray[np.intp], o: npt.NDArray[np.intp]) -> tuple[float, float, float]:
        effect = float(self.change[w].mean() - self.change[o].mean())
        paid = float(self.subsidy_per_day[w].mean())
        placebo = float(self.placebo_change[w].mean() - self.placebo_change[o].mean())
        return effect, effect / paid if paid else float("nan"), placebo


def _percentiles(point: float, draws: npt.NDArray[np.float64]) -> Interval:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return Interval(point, float(low), float(high))
