"""The claim route's answer built directly is what the documented pydantic model would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from factories import make_voucher_type
from hypothesis import given
from hypothesis import strategies as st

from xfq.api.schemas import ClaimOut, claim_body, voucher_body, voucher_out
from xfq.domain.voucher import new_voucher

ZONES = [ZoneInfo("Asia/Shanghai"), UTC, ZoneInfo("America/St_Johns"), ZoneInfo("Europe/London")]
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    issued=INSTANTS,
    days=st.integers(0, 30),
    starts_later=st.booleans(),  # a fixed window that opens after the claim
    zone=st.sampled_from(ZONES),
    code=st.sampled_from(["issued", "sold_out", "limit_reached"]),
    remaining=st.none() | st.integers(0, 10**6),
    with_voucher=st.booleans(),
)
def test_claim_body_equals_the_models_json(
    issued: datetime,
    days: int,
    starts_later: bool,
    zone: ZoneInfo,
    code: str,
    remaining: int | None,
    with_voucher: bool,
) -> None:
    vtype = make_voucher_type()
    start = issued + timedelta(hours=days) if starts_later else issued
    window = (start, start + timedelta(days=days, microseconds=days))
    voucher = new_voucher("v-1", vtype.id, "r6", vtype.category, "p-1", issued, window)
    model = ClaimOut(code=code, reason="why", remaining=remaining)
    direct = None
    if with_voucher:
        model.voucher = voucher_out(voucher, vtype, zone)
        direct = voucher_body(voucher, vtype, zone)
    assert claim_body(code, "why", remaining, direct) == model.model_dump(mode="json")
