"""The Taiyuan example file reproduces every figure of the March 2022 newspaper article."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from xfq.domain.campaign import (
    Campaign,
    PartialRefund,
    Round,
    ThresholdBase,
    ValidityKind,
)
from xfq.domain.eligibility import Residency
from xfq.spec import load_campaign, parse_campaign, summarize_campaign, summary_json
from xfq.spec.summary import RoundSummary

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# The article's table for round 6: type, category, label, count, value in yuan.
ARTICLE_TYPES = [
    ("r6-retail-180-40", "retail", "满180减40", 23_250, 930_000),
    ("r6-retail-30-6", "retail", "满30减6", 84_000, 504_000),
    ("r6-home-2000-300", "home", "满2000减300", 1_980, 594_000),
    ("r6-home-500-80", "home", "满500减80", 1_800, 144_000),
    ("r6-catering-200-50", "catering", "满200减50", 3_270, 163_500),
    ("r6-online-180-40", "online", "满180减40", 4_000, 160_000),
    ("r6-online-30-6", "online", "满30减6", 8_400, 50_400),
]
ARTICLE_CATEGORIES = {
    "retail": (107_250, 1_434_000),
    "home": (3_780, 738_000),
    "catering": (3_270, 163_500),
    "online": (12_400, 210_400),
}
ARTICLE_ROUND_COUNT = 126_700
ARTICLE_ROUND_YUAN = 2_545_900


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign(EXAMPLE)


@pytest.fixture(scope="module")
def round6(campaign: Campaign) -> RoundSummary:
    summary = summarize_campaign(campaign)
    return next(r for r in summary.rounds if r.round_id == "r6")


def test_round6_total_is_the_articles(round6: RoundSummary) -> None:
    assert round6.count == ARTICLE_ROUND_COUNT
    assert round6.value_fen == ARTICLE_ROUND_YUAN * 100


def test_round6_category_subtotals_are_the_articles(round6: RoundSummary) -> None:
    subtotals = {c.category: (c.count, c.value_fen) for c in round6.categories}
    assert subtotals == {
        category: (count, yuan * 100) for category, (count, yuan) in ARTICLE_CATEGORIES.items()
    }


def test_round6_voucher_types_are_the_articles(round6: RoundSummary) -> None:
    types = [(t.type_id, t.category, t.label, t.count, t.value_fen) for t in round6.types]
    assert types == [(i, c, label, n, yuan * 100) for i, c, label, n, yuan in ARTICLE_TYPES]


def test_round6_states_the_articles_totals(campaign: Campaign) -> None:
    rnd = campaign.round("r6")
    assert rnd.stated_total is not None
    assert (rnd.stated_total.count, rnd.stated_total.value_fen) == (126_700, 254_590_000)
    stated = {k: (v.count, v.value_fen) for k, v in rnd.stated_by_category.items()}
    assert stated == {k: (n, yuan * 100) for k, (n, yuan) in ARTICLE_CATEGORIES.items()}


def test_round6_opens_at_ten_in_shanghai(campaign: Campaign) -> None:
    opens_at = campaign.round("r6").opens_at
    assert opens_at.tzinfo is not None
    assert opens_at == datetime(2022, 3, 5, 10, 0, tzinfo=SHANGHAI)
    assert opens_at.utcoffset() == SHANGHAI.utcoffset(datetime(2022, 3, 5))


def _last_usable_day(campaign: Campaign, rnd: Round) -> date:
    return rnd.validity.last_usable_day(rnd.opens_at, rnd.claim_closes_at, campaign.tz)


def test_last_usable_days(campaign: Campaign) -> None:
    assert _last_usable_day(campaign, campaign.round("r6")) == date(2022, 3, 11)
    assert _last_usable_day(campaign, campaign.round("r5")) == date(2022, 3, 4)


def test_round5_is_grabbed_on_saturday_the_26th(campaign: Campaign) -> None:
    r5 = campaign.round("r5")
    assert r5.opens_at == datetime(2022, 2, 26, 10, 0, tzinfo=SHANGHAI)
    assert r5.opens_at.weekday() == 5  # Saturday
    assert [t.id for t in r5.types] == [i.replace("r6-", "r5-") for i, *_ in ARTICLE_TYPES]
    assert r5.stated_total is None


def test_policies_are_written_out(campaign: Campaign) -> None:
    assert campaign.timezone_name == "Asia/Shanghai"
    assert campaign.checkout.threshold_base is ThresholdBase.AFTER_MERCHANT_PROMOTION
    assert campaign.refunds.partial is PartialRefund.KEEP_IF_THRESHOLD_MET
    assert campaign.rollover.enabled is False
    r6 = campaign.round("r6")
    assert r6.validity.kind is ValidityKind.CALENDAR_DAYS and r6.validity.days == 7
    assert (r6.limits.per_type, r6.limits.per_category, r6.limits.per_round) == (1, 1, 4)
    assert r6.eligibility.residencies == frozenset(Residency)
    assert {t.per_person for t in r6.types} == {1}
    assert {t.channel for t in r6.types} == {"unionpay_app"}


def test_summary_json_has_fen_and_yuan(campaign: Campaign) -> None:
    data = summary_json(summarize_campaign(campaign))
    r6 = next(r for r in data["rounds"] if r["id"] == "r6")
    assert (r6["count"], r6["value_fen"], r6["value_yuan"]) == (126_700, 254_590_000, "2545900.00")
    assert r6["last_usable_day"] == "2022-03-11"
    assert r6["opens_at"] == "2022-03-05T10:00:00+08:00"
    home = next(c for c in r6["categories"] if c["id"] == "home")
    assert (home["count"], home["value_fen"], home["value_yuan"]) == (
        3_780,
        73_800_000,
        "738000.00",
    )
    first = r6["types"][0]
    assert (first["threshold_fen"], first["discount_fen"], first["discount_yuan"]) == (
        18_000,
        4_000,
        "40.00",
    )


def test_an_offset_date_time_is_accepted() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "opens_at = 2022-03-05T10:00:00", "opens_at = 2022-03-05T02:00:00Z"
    )
    opens_at = parse_campaign(text, "offset.toml").round("r6").opens_at
    assert opens_at == datetime(2022, 3, 5, 10, 0, tzinfo=SHANGHAI)
    assert opens_at.tzinfo == SHANGHAI


def test_yuan_amounts_may_be_text_with_fen() -> None:
    head = 'id = "r5-retail-30-6"\ncategory = "retail"\n'
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        f"{head}threshold_yuan = 30\ndiscount_yuan = 6",
        f'{head}threshold_yuan = "29.90"\ndiscount_yuan = "5.5"',
    )
    _, vtype = parse_campaign(text, "fen.toml").voucher_type("r5-retail-30-6")
    assert (vtype.threshold_fen, vtype.discount_fen, vtype.label) == (2_990, 550, "满29.90减5.50")
