"""Money is an integer number of fen (分, 1/100 yuan); never a float."""

from __future__ import annotations

import re

FEN_PER_YUAN = 100
_YUAN_TEXT = re.compile(r"^(?P<whole>\d+)(?:\.(?P<frac>\d{1,2}))?$")


class MoneyFormatError(ValueError):
    """A yuan amount written in a form xfq does not accept."""


def yuan_to_fen(amount: int | str) -> int:
    """Read a yuan amount given as a whole number or as text with at most two decimals.

    Floats are refused on purpose: 0.1 + 0.2 is not 0.3 in binary.
    """
    if isinstance(amount, bool) or not isinstance(amount, int | str):
        raise MoneyFormatError(
            f"a yuan amount must be a whole number or text like '12.50', not {amount!r}"
        )
    if isinstance(amount, int):
        if amount < 0:
            raise MoneyFormatError(f"a yuan amount cannot be negative: {amount}")
        return amount * FEN_PER_YUAN
    match = _YUAN_TEXT.match(amount.strip())
    if match is None:
        raise MoneyFormatError(
            f"{amount!r} is not a yuan amount: write digits with at most two decimals, like '12.50'"
        )
    frac = (match["frac"] or "").ljust(2, "0")
    return int(match["whole"]) * FEN_PER_YUAN + int(frac)


def format_yuan(fen: int) -> str:
    """Format fen as yuan with two decimals, e.g. 1250 -> '12.50'."""
    sign = "-" if fen < 0 else ""
    whole, frac = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{frac:02d}"


def format_yuan_short(fen: int) -> str:
    """Whole yuan without decimals when there are none (for 满180减40 labels)."""
    if fen % FEN_PER_YUAN == 0:
        return str(fen // FEN_PER_YUAN)
    return format_yuan(fen)
