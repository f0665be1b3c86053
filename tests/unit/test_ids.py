"""Ids are unguessable, fit the ledger's id columns, and sort in the order they were made."""

from __future__ import annotations

import itertools

from xfq.adapters.ids import RandomIds


def test_ids_made_in_a_later_millisecond_sort_after_earlier_ones() -> None:
    ticks = itertools.count(1_646_445_600_000_000_000, 1_000_000)  # 2022-03-05 10:00, +1 ms
    ids = RandomIds(now_ns=lambda: next(ticks))
    made = [ids.new_id("v") for _ in range(5000)]
    assert made == sorted(made)


def test_ids_of_one_millisecond_differ_and_fit_the_id_columns() -> None:
    ids = RandomIds(now_ns=lambda: 1_646_445_600_000_000_000)
    made = {ids.new_id("rd") for _ in range(10_000)}
    assert len(made) == 10_000
    assert {len(i) for i in made} == {32}  # redemptions.id is String(32)
    assert all(i.startswith("rd_") and i[3:].isalnum() for i in made)
