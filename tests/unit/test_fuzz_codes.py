"""Fuzz of the codes people hand in: till codes (the QR at the till, the paper voucher) and
waiting-room admissions. Whatever the text, the parser answers a value or a problem code and
never raises; a changed code is never read as valid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from xfq.domain.till_code import CodeProblem, TillCode, issue_code, read_code
from xfq.domain.waiting_room import Admission, TokenProblem, issue_token, read_token

KEY = b"k" * 32
NOW = datetime(2022, 3, 6, 4, 0, tzinfo=UTC)
CODE = issue_code(KEY, "v_abc", "p1", NOW)
TOKEN = issue_token(KEY, "t1", "r6", "p1", NOW + timedelta(seconds=60))

texts = st.one_of(
    st.text(max_size=600),
    st.binary(max_size=600).map(lambda raw: raw.decode("latin-1")),  # what a header becomes
    st.lists(st.text(max_size=40), max_size=5).map(".".join),
    st.lists(st.text(max_size=40), max_size=3).map(lambda parts: ".".join(["XFQ1", *parts])),
)
moments = st.datetimes(timezones=st.just(UTC))


@st.composite
def mutated(draw: st.DrawFn, original: str) -> str:
    """`original` with one character replaced, inserted or deleted."""
    at = draw(st.integers(0, len(original) - 1))
    char = draw(st.characters())
    how = draw(st.sampled_from(["replace", "insert", "delete"]))
    if how == "replace":
        return original[:at] + char + original[at + 1 :]
    if how == "insert":
        return original[:at] + char + original[at:]
    return original[:at] + original[at + 1 :]


@settings(max_examples=300)
@given(texts, moments)
def test_any_text_as_a_till_code_is_read_or_refused_never_raises(text: str, now: datetime) -> None:
    assert isinstance(read_code(KEY, text, now), TillCode | CodeProblem)


@settings(max_examples=300)
@given(mutated(CODE))
def test_a_changed_till_code_is_refused(text: str) -> None:
    read = read_code(KEY, text, NOW)
    if text.strip() != CODE:
        assert isinstance(read, CodeProblem), text


@settings(max_examples=300)
@given(texts, moments)
def test_any_text_as_an_admission_is_read_or_refused_never_raises(text: str, now: datetime) -> None:
    assert isinstance(read_token(KEY, text, "r6", "p1", now), Admission | TokenProblem)


@settings(max_examples=300)
@given(mutated(TOKEN))
def test_a_changed_admission_is_refused(text: str) -> None:
    read = read_token(KEY, text, "r6", "p1", NOW)
    if text.strip() != TOKEN:
        assert isinstance(read, TokenProblem), text


def test_non_ascii_codes_are_malformed_not_a_crash() -> None:
    assert read_code(KEY, CODE[:-1] + "é", NOW) is CodeProblem.MALFORMED
    assert read_token(KEY, TOKEN[:-1] + "\xff", "r6", "p1", NOW) is TokenProblem.MALFORMED
