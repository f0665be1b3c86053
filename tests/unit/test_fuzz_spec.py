"""Fuzz of the campaign-file loader: any text, and the reference campaign with hostile changes,
gives either a campaign or a `SpecError` whose every problem names its place (`FILE:LINE:`);
never another exception."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xfq.domain.campaign import Campaign
from xfq.domain.errors import SpecError
from xfq.spec import parse_campaign

EXAMPLE = (Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml").read_text()
LINES = EXAMPLE.splitlines()
ASSIGNMENTS = [n for n, line in enumerate(LINES) if re.match(r"^\s*[\w.]+\s*=", line)]
PLACED = re.compile(r"^fuzz\.toml:\d+: \S")
HOSTILE_VALUES = [
    '""', "0", "-1", "-9223372036854775809", "99999999999999999999999999", "1e400", "-inf",
    "nan", "1.5", "true", "[]", "{}", "[1, 2]", '["x"]', '{ kind = "x" }', '"x"', '"\\u0000"',
    '"Mars/Olympus"', '"../../etc/passwd"', '"Europe/London"', '"UTC"', "2022-13-45T10:00:00",
    "9999-12-31T23:59:59", "0001-01-01T00:00:00", "1970-01-01T00:00:00Z", "2022-03-05",
    "10:00:00", '"' + "长" * 300 + '"',
]  # fmt: skip


def _outcome(text: str) -> Campaign | SpecError:
    try:
        return parse_campaign(text, "fuzz.toml")
    except SpecError as error:
        return error


def _assert_clear(text: str) -> None:
    outcome = _outcome(text)
    if isinstance(outcome, SpecError):
        assert outcome.problems, text
        for problem in outcome.problems:
            assert PLACED.match(problem), problem


@st.composite
def changed_value(draw: st.DrawFn) -> str:
    """The reference campaign with one value replaced."""
    lines = list(LINES)
    at = draw(st.sampled_from(ASSIGNMENTS))
    key = lines[at].split("=", 1)[0]
    value = draw(st.one_of(st.sampled_from(HOSTILE_VALUES), st.integers().map(str)))
    lines[at] = f"{key}= {value}"
    return "\n".join(lines)


@st.composite
def changed_lines(draw: st.DrawFn) -> str:
    """The reference campaign with lines deleted, repeated or swapped."""
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["delete", "repeat", "swap"]))
        if how == "delete":
            del lines[at]
        elif how == "repeat":
            lines.insert(at, lines[at])
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
    return "\n".join(lines)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=2000))
def test_any_text_is_a_campaign_or_a_placed_spec_error(text: str) -> None:
    _assert_clear(text)


@FUZZ
@given(changed_value())
def test_a_hostile_value_anywhere_gives_a_placed_spec_error_or_a_campaign(text: str) -> None:
    _assert_clear(text)


@FUZZ
@given(changed_lines())
def test_deleted_repeated_or_swapped_lines_give_a_placed_spec_error_or_a_campaign(
    text: str,
) -> None:
    _assert_clear(text)


def test_the_reference_campaign_itself_loads() -> None:
    assert isinstance(_outcome(EXAMPLE), Campaign)
