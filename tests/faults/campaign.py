"""The campaign of the fault runs: little stock, so that the grab sells out under faults."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from spec_text import campaign, round_, voucher_type

OPENS_AT = datetime(2022, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ROUND = "r1"
PER_TYPE, PER_ROUND = 1, 2
TYPES = {  # type id -> count (times the run's `scale`)
    "r1-retail-30-6": 120,
    "r1-retail-100-20": 60,
    "r1-home-200-50": 40,
}
MERCHANTS = {"retail": ("shop-a", "shop-b"), "home": ("home-a",)}


def spec_text(scale: int = 1) -> str:
    limits = f"per_type = {PER_TYPE}\nper_category = {PER_ROUND}\nper_round = {PER_ROUND}"
    text = campaign("faults", "Fault runs") + round_(ROUND, limits=limits)
    for type_id, count in TYPES.items():
        _, _, threshold, discount = type_id.split("-")
        text += voucher_type(type_id, int(threshold), int(discount), count * scale)
    return text
