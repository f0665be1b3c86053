"""Money is integer fen: reading yuan amounts, writing them back, and the round's sums."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from factories import (
    ROUND6_STATED_BY_CATEGORY,
    ROUND6_STATED_TOTAL,
    make_round,
    make_voucher_type,
)
from hypothesis import given
from hypothesis import strategies as st

from xfq.domain.money import MoneyFormatError, format_yuan, format_yuan_short, yuan_to_fen


@pytest.mark.parametrize(
    ("amount", "fen"),
    [
        ("12.50", 1250),
        ("12.5", 1250),
        ("12", 1200),
        (12, 1200),
        ("0.01", 1),
        ("0.10", 10),
        ("0.1", 10),
        ("0", 0),
        (0, 0),
        ("180", 180_00),
        ("2545900", 2_545_900_00),
        (" 12.50 ", 1250),
    ],
)
def test_reads_yuan_as_fen(amount: int | str, fen: int) -> None:
    assert yuan_to_fen(amount) == fen


@pytest.mark.parametrize(
    "amount",
    [
        12.5,
        12.0,
        0.1 + 0.2,
        Decimal("12.50"),
        None,
        True,
        False,
    ],
)
def test_refuses_what_is_not_a_whole_number_or_text(amount: Any) -> None:
    with pytest.raises(MoneyFormatError, match=re.escape("whole number or text like '12.50'")):
        yuan_to_fen(amount)


@pytest.mark.parametrize("amount", [-1, -12])
def test_refuses_negative_whole_numbers(amount: int) -> None:
    with pytest.raises(MoneyFormatError, match="cannot be negative"):
        yuan_to_fen(amount)


@pytest.mark.parametrize(
    "text",
    ["-1", "-0.01", "12.345", "1.000", "12.", ".5", "", " ", "1,000", "12 .5", "1e3", "abc", "+5"],
)
def test_refuses_malformed_text(text: str) -> None:
    with pytest.raises(MoneyFormatError, match="at most two decimals"):
        yuan_to_fen(text)


def test_money_format_error_is_a_value_error() -> None:
    # Callers that already handle ValueError (e.g. form parsing) keep working.
    assert issubclass(MoneyFormatError, ValueError)


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (1250, "12.50"),
        (1, "0.01"),
        (10, "0.10"),
        (0, "0.00"),
        (100, "1.00"),
        (2_545_900_00, "2545900.00"),
        (-5, "-0.05"),
        (-1250, "-12.50"),
    ],
)
def test_formats_fen_as_yuan_with_two_decimals(fen: int, text: str) -> None:
    assert format_yuan(fen) == text


@pytest.mark.parametrize(
    ("fen", "text"),
    [(180_00, "180"), (6_00, "6"), (2000_00, "2000"), (1250, "12.50"), (5, "0.05")],
)
def test_short_format_drops_decimals_only_for_whole_yuan(fen: int, text: str) -> None:
    assert format_yuan_short(fen) == text


@given(st.integers(min_value=0, max_value=10**12))
def test_formatted_amount_reads_back_unchanged(fen: int) -> None:
    assert yuan_to_fen(format_yuan(fen)) == fen


@pytest.mark.parametrize(
    ("threshold_fen", "discount_fen", "label"),
    [
        (180_00, 40_00, "满180减40"),
        (30_00, 6_00, "满30减6"),
        (2000_00, 300_00, "满2000减300"),
        (12_50, 50, "满12.50减0.50"),
    ],
)
def test_voucher_type_label_reads_like_the_newspaper(
    threshold_fen: int, discount_fen: int, label: str
) -> None:
    vtype = make_voucher_type(threshold_fen=threshold_fen, discount_fen=discount_fen)
    assert vtype.label == label


def test_round6_adds_up_to_the_published_totals() -> None:
    """126,700 vouchers worth 2,545,900 yuan, as the article says."""
    rnd = make_round()
    assert rnd.count == ROUND6_STATED_TOTAL.count == 126_700
    assert rnd.budget_fen == ROUND6_STATED_TOTAL.value_fen
    assert format_yuan(rnd.budget_fen) == "2545900.00"


def test_round6_category_subtotals_match_the_article() -> None:
    rnd = make_round()
    for category, stated in ROUND6_STATED_BY_CATEGORY.items():
        types = [t for t in rnd.types if t.category == category]
        assert sum(t.count for t in types) == stated.count, category
        assert sum(t.value_fen for t in types) == stated.value_fen, category


@pytest.mark.parametrize(
    ("threshold_yuan", "discount_yuan", "count", "value_yuan"),
    [
        (180, 40, 23_250, "930000"),
        (30, 6, 84_000, "504000"),
        (2000, 300, 1_980, "594000"),
        (500, 80, 1_800, "144000"),
        (200, 50, 3_270, "163500"),
    ],
)
def test_voucher_type_value_is_count_times_discount(
    threshold_yuan: int, discount_yuan: int, count: int, value_yuan: str
) -> None:
    vtype = make_voucher_type(
        threshold_fen=yuan_to_fen(threshold_yuan),
        discount_fen=yuan_to_fen(discount_yuan),
        count=count,
    )
    assert vtype.value_fen == yuan_to_fen(value_yuan)
