"""A forked job hands back its result, its error, or says that it died."""

from __future__ import annotations

import os

import pytest

from xfq.forked import ForkedJobFailed, start_forked


def test_the_result_comes_back_from_another_process() -> None:
    parent = os.getpid()
    result = start_forked(lambda: (os.getpid(), [1, 2, 3]))
    child, payload = result()
    assert child != parent
    assert payload == [1, 2, 3]


def test_an_error_in_the_child_is_raised_in_the_parent() -> None:
    def fail() -> int:
        raise ValueError("no ledger at /nowhere")

    result = start_forked(fail)
    with pytest.raises(ValueError, match="no ledger at /nowhere"):
        result()


def test_a_child_that_dies_is_reported_with_its_exit_code() -> None:
    result = start_forked(lambda: os._exit(7))
    with pytest.raises(ForkedJobFailed, match="exit code 7"):
        result()


def test_an_unpicklable_result_is_reported_not_lost() -> None:
    result = start_forked(lambda: lambda: None)
    with pytest.raises(ForkedJobFailed, match="not picklable"):
        result()
