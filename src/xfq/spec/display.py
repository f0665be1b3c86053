"""Figures as an operator reads them: 2,545,900 yuan."""

from __future__ import annotations

from xfq.domain.money import FEN_PER_YUAN


def yuan_text(fen: int) -> str:
    """Yuan with thousands separators, decimals only when there are fen: 2,545,900 or 12.50."""
    sign = "-" if fen < 0 else ""
    whole, frac = divmod(abs(fen), FEN_PER_YUAN)
    decimals = f".{frac:02d}" if frac else ""
    return f"{sign}{whole:,}{decimals}"
