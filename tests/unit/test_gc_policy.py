"""The direct demo pauses the cyclic collector; whatever happens, it comes back on."""

from __future__ import annotations

import gc

import pytest

from xfq.gc_policy import SERVING_THRESHOLDS, paused_gc, tune_for_serving


def test_the_collector_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_comes_back_on_after_an_error() -> None:
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("the demo failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_serving_process_freezes_what_start_up_made_and_collects_more_rarely() -> None:
    before = gc.get_threshold()
    try:
        tune_for_serving()
        assert gc.get_freeze_count() > 0  # start-up's objects are out of every later pass
        assert gc.get_threshold() == SERVING_THRESHOLDS
        assert gc.isenabled()  # cycles made by requests are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
