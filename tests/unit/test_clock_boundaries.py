"""Boundaries of time in the domain: codes and admissions lapse exactly at their expiry, and a
voucher's validity ends at local midnight also in a zone with daylight saving time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from xfq.domain.till_code import CodeProblem, TillCode, issue_code, read_code
from xfq.domain.waiting_room import Admission, TokenProblem, issue_token, read_token
from xfq.spec import parse_campaign

KEY = b"k" * 32
SECOND = timedelta(seconds=1)
BENCH = (Path(__file__).parents[2] / "benchmarks" / "bench-campaign.toml").read_text()


@pytest.mark.parametrize(
    ("offset", "usable"), [(-SECOND, True), (timedelta(0), False), (SECOND, False)]
)
def test_a_till_code_lapses_at_its_expiry_second(offset: timedelta, usable: bool) -> None:
    issued = datetime(2022, 3, 5, 2, 0, tzinfo=UTC)
    code = issue_code(KEY, "v1", "p1", issued, ttl=timedelta(seconds=90))
    read = read_code(KEY, code, issued + timedelta(seconds=90) + offset)
    assert isinstance(read, TillCode) if usable else read is CodeProblem.EXPIRED


@pytest.mark.parametrize(
    ("offset", "usable"), [(-SECOND, True), (timedelta(0), False), (SECOND, False)]
)
def test_an_admission_lapses_at_its_expiry_second(offset: timedelta, usable: bool) -> None:
    expires = datetime(2022, 3, 5, 2, 5, tzinfo=UTC)
    token = issue_token(KEY, "t1", "r1", "p1", expires)
    read = read_token(KEY, token, "r1", "p1", expires + offset)
    assert isinstance(read, Admission) if usable else read is TokenProblem.EXPIRED


@pytest.mark.parametrize(
    ("zone", "opens", "until"),
    [
        # New York springs forward on 2022-03-13: the validity week has a 23-hour day.
        ("America/New_York", "2022-03-10T10:00:00", datetime(2022, 3, 17, 4, 0, tzinfo=UTC)),
        # London falls back on 2022-10-30: a 25-hour day.
        ("Europe/London", "2022-10-27T10:00:00", datetime(2022, 11, 3, 0, 0, tzinfo=UTC)),
        ("Asia/Shanghai", "2022-03-05T10:00:00", datetime(2022, 3, 11, 16, 0, tzinfo=UTC)),
    ],
)
def test_validity_ends_at_local_midnight_across_daylight_saving(
    zone: str, opens: str, until: datetime
) -> None:
    text = BENCH.replace('timezone = "Asia/Shanghai"', f'timezone = "{zone}"')
    text = text.replace("opens_at = 2022-03-05T10:00:00", f"opens_at = {opens}")
    text = text.replace(
        "claim_closes_at = 2022-03-12T00:00:00", "claim_closes_at = 2022-12-31T00:00:00"
    )
    campaign = parse_campaign(text, "dst.toml")
    rnd = campaign.round("b1")
    assert rnd.opens_at.tzinfo == ZoneInfo(zone)
    claimed = rnd.opens_at + timedelta(minutes=1)
    valid_from, valid_until = rnd.validity.window(rnd.opens_at, claimed, campaign.tz)
    assert valid_from == claimed and valid_until == until
    assert valid_until.astimezone(ZoneInfo(zone)).time().hour == 0  # local midnight
