"""Ids are unguessable and fit the ledger's id columns."""

from __future__ import annotations

from xfq.adapters.ids import RandomIds


def test_ten_thousand_ids_differ_and_fit_the_id_columns() -> None:
    ids = RandomIds()
    made = {ids.new_id("rd") for _ in range(10_000)}
    assert len(made) == 10_000
    assert {len(i) for i in made} == {19}  # redemptions.id is String(32)
