"""Lottery rounds and household caps in campaign files: read, refused with FILE:LINE, shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

import spec_text
from xfq.domain.campaign import IssuanceMode
from xfq.domain.errors import SpecError
from xfq.spec import parse_campaign
from xfq.spec.cli import spec_app

SOURCE = "fair.toml"
TYPE = spec_text.voucher_type("r1-retail-30-6", 30, 6, 100)


def lottery_file(lottery: str = spec_text.lottery(), limits: str | None = None) -> str:
    round_limits = limits or "per_type = 1\nper_category = 2\nper_round = 3\nper_household = 4"
    return (
        spec_text.campaign("fair", "Fair issuance")
        + spec_text.round_(issuance="lottery", extra=lottery, limits=round_limits)
        + TYPE
    )


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_campaign(text, SOURCE)
    return caught.value.problems


def line_of(text: str, needle: str) -> int:
    return 1 + next(n for n, line in enumerate(text.splitlines()) if needle in line)


def test_a_lottery_round_and_a_household_cap_are_read() -> None:
    text = lottery_file(spec_text.lottery(caps="max_wins_per_week = 1\nmax_wins_per_campaign = 2"))
    rnd = parse_campaign(text, SOURCE).round("r1")
    assert rnd.issuance is IssuanceMode.LOTTERY
    assert rnd.lottery is not None
    assert rnd.lottery.draw_at == rnd.opens_at
    assert rnd.lottery.registration_closes_at.isoformat() == "2022-03-04T20:00:00+08:00"
    assert (rnd.lottery.max_wins_per_week, rnd.lottery.max_wins_per_campaign) == (1, 2)
    assert rnd.limits.per_household == 4


def test_a_lottery_round_without_its_table_names_the_issuance_line() -> None:
    text = lottery_file(lottery="")
    [problem] = problems_of(text)
    assert problem.startswith(f"{SOURCE}:{line_of(text, 'issuance =')}: rounds[0].issuance")
    assert "[rounds.lottery]" in problem


def test_a_draw_before_registration_closes_is_refused_at_its_line() -> None:
    text = lottery_file(spec_text.lottery(draw_at="2022-03-04T19:00:00"))
    problems = problems_of(text)
    assert problems[0].startswith(
        f"{SOURCE}:{line_of(text, 'draw_at =')}: rounds[0].lottery.draw_at"
    )
    assert "must not be before registration closes" in problems[0]
    assert "inside the round's window" in problems[1]


def test_registration_that_closes_before_it_opens_is_refused() -> None:
    text = lottery_file(spec_text.lottery(registration_closes_at="2022-02-28T09:00:00"))
    [problem] = problems_of(text)
    line = line_of(text, "registration_closes_at =")
    assert problem.startswith(f"{SOURCE}:{line}: rounds[0].lottery.registration_closes_at")


def test_a_lottery_table_on_a_grab_round_is_refused() -> None:
    text = (
        spec_text.campaign("fair", "Fair issuance")
        + spec_text.round_(extra=spec_text.lottery())
        + TYPE
    )
    [problem] = problems_of(text)
    assert 'applies only when issuance = "lottery"' in problem


def test_a_weekly_cap_above_the_campaign_cap_is_refused() -> None:
    text = lottery_file(spec_text.lottery(caps="max_wins_per_week = 3\nmax_wins_per_campaign = 2"))
    [problem] = problems_of(text)
    assert problem.startswith(f"{SOURCE}:{line_of(text, 'max_wins_per_week')}:")


def test_an_unknown_key_in_the_lottery_table_is_refused() -> None:
    text = lottery_file(spec_text.lottery(caps="max_wins_per_day = 1"))
    [problem] = problems_of(text)
    assert problem.startswith(f"{SOURCE}:{line_of(text, 'max_wins_per_day')}:")


def run_check(path: Path, *args: str) -> Result:
    app = typer.Typer()
    app.add_typer(spec_app, name="spec")
    return CliRunner().invoke(app, ["spec", "check", str(path), *args], env={"COLUMNS": "120"})


def test_spec_check_shows_the_lottery_and_the_household_cap(tmp_path: Path) -> None:
    path = tmp_path / "fair.toml"
    path.write_text(lottery_file(spec_text.lottery(caps="max_wins_per_week = 1")), "utf-8")
    out = run_check(path).stdout
    assert "per household    4 per round" in out
    assert "registration     2022-03-01 09:00:00 to 2022-03-04 20:00:00 (exclusive)" in out
    assert "draw at          2022-03-05 10:00:00" in out
    assert "wins per person  1 a week, no cap per campaign" in out
    data = json.loads(run_check(path, "--json").stdout)
    [rnd] = data["rounds"]
    assert rnd["issuance"] == "lottery"
    assert rnd["lottery"]["draw_at"] == "2022-03-05T10:00:00+08:00"
    assert rnd["limits"]["per_household"] == 4


def quota_file(quotas: str, count: int = 100) -> str:
    return (
        spec_text.campaign("fair", "Fair issuance")
        + spec_text.round_()
        + spec_text.voucher_type("r1-retail-30-6", 30, 6, count)
        + quotas
    )


def test_quotas_are_read_and_shown(tmp_path: Path) -> None:
    text = quota_file("assisted = 20\ndistricts = { west = 50, east = 30 }\n")
    vtype = parse_campaign(text, SOURCE).voucher_type("r1-retail-30-6")[1]
    assert vtype.assisted == 20 and vtype.districts == (("east", 30), ("west", 50))
    path = tmp_path / "quotas.toml"
    path.write_text(text, "utf-8")
    assert (
        "quota            r1-retail-30-6: 20 assisted, 30 east, 50 west" in run_check(path).stdout
    )


def test_districts_that_do_not_add_up_name_their_line() -> None:
    text = quota_file("assisted = 20\ndistricts = { west = 50, east = 20 }\n")
    [problem] = problems_of(text)
    assert problem.startswith(
        f"{SOURCE}:{line_of(text, 'districts =')}: rounds[0].types[0].districts"
    )
    assert "add up to 70 vouchers, but the type has 80 to split" in problem


def test_an_assisted_reserve_of_the_whole_count_is_refused() -> None:
    text = quota_file("assisted = 100\n")
    [problem] = problems_of(text)
    assert problem.startswith(
        f"{SOURCE}:{line_of(text, 'assisted =')}: rounds[0].types[0].assisted"
    )


def test_quotas_on_a_lottery_round_are_refused() -> None:
    text = lottery_file() + "assisted = 10\n"
    [problem] = problems_of(text)
    assert "cannot have quotas" in problem


ROOM = "\n[rounds.waiting_room]\nopens_before_minutes = 10\nadmit_per_second = 500\n"


def test_a_waiting_room_is_read_and_shown(tmp_path: Path) -> None:
    text = spec_text.campaign("fair", "Fair") + spec_text.round_(extra=ROOM) + TYPE
    room = parse_campaign(text, SOURCE).round("r1").waiting_room
    assert room is not None and room.admit_per_second == 500
    assert room.token_ttl.total_seconds() == 60
    path = tmp_path / "room.toml"
    path.write_text(text, "utf-8")
    assert "waiting room     opens 10 min before; random order at the opening second" in (
        run_check(path).stdout
    )


def test_a_waiting_room_on_a_lottery_round_is_refused() -> None:
    text = lottery_file(spec_text.lottery() + ROOM)
    [problem] = problems_of(text)
    assert problem.startswith(f"{SOURCE}:{line_of(text, '[rounds.waiting_room]')}:")
    assert 'applies only when issuance = "grab"' in problem


def test_the_fair_issuance_example_checks() -> None:
    example = Path(__file__).parents[2] / "examples" / "fair-issuance" / "campaign.toml"
    result = run_check(example)
    assert result.exit_code == 0, result.output
    campaign = parse_campaign(example.read_text("utf-8"), str(example))
    assert campaign.round("w1").lottery is not None
    assert campaign.round("g2").waiting_room is not None
    assert campaign.voucher_type("g2-catering-100-30")[1].assisted == 2000


def test_the_rules_an_engine_must_enforce_are_listed() -> None:
    from xfq.domain.fair import engine_rules_used

    example = Path(__file__).parents[2] / "examples" / "fair-issuance" / "campaign.toml"
    campaign = parse_campaign(example.read_text("utf-8"), str(example))
    assert engine_rules_used(campaign) == [
        "lottery issuance (round w1)",
        "household cap (round w1)",
        "household cap (round g2)",
        "assisted-channel reserve (g2-retail-50-10)",
        "assisted-channel reserve (g2-catering-100-30)",
        "district shares (g2-catering-100-30)",
    ]
    plain = spec_text.campaign("plain", "Plain") + spec_text.round_() + TYPE
    assert engine_rules_used(parse_campaign(plain, SOURCE)) == []
