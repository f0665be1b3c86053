"""The code shown at the till: it names one voucher and holder, lapses, and cannot be forged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xfq.domain.till_code import CodeProblem, TillCode, issue_code, read_code

KEY = b"k" * 32
NOW = datetime(2022, 3, 6, 4, 0, tzinfo=UTC)


def test_a_fresh_code_names_its_voucher_and_holder() -> None:
    code = issue_code(KEY, "v_abc", "p1", NOW)
    read = read_code(KEY, code, NOW + timedelta(seconds=30))
    assert isinstance(read, TillCode)
    assert (read.voucher_id, read.person_id) == ("v_abc", "p1")


def test_a_screenshot_is_useless_once_the_code_lapses() -> None:
    code = issue_code(KEY, "v_abc", "p1", NOW, ttl=timedelta(seconds=60))
    assert isinstance(read_code(KEY, code, NOW + timedelta(seconds=59)), TillCode)
    assert read_code(KEY, code, NOW + timedelta(seconds=60)) is CodeProblem.EXPIRED


def test_a_code_signed_with_another_key_is_forged() -> None:
    code = issue_code(b"x" * 32, "v_abc", "p1", NOW)
    assert read_code(KEY, code, NOW) is CodeProblem.FORGED


def test_changing_the_voucher_in_a_code_breaks_its_signature() -> None:
    victim = issue_code(KEY, "v_victim", "p2", NOW).split(".")
    mine = issue_code(KEY, "v_mine", "p1", NOW).split(".")
    spliced = ".".join([mine[0], victim[1], mine[2]])
    assert read_code(KEY, spliced, NOW) is CodeProblem.FORGED


@pytest.mark.parametrize("code", ["", "XFQ1", "XFQ1..", "XFQ2.a.b", "hello world", "XFQ1.a.b.c"])
def test_garbage_is_malformed_or_forged_never_a_crash(code: str) -> None:
    assert read_code(KEY, code, NOW) in (CodeProblem.MALFORMED, CodeProblem.FORGED)
