"""How a Redis engine process keeps what was issued, to answer repeats of a sold-out type."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from xfq.adapters.ids import RandomIds
from xfq.adapters.redis.issued_log import claim_key, packed, unpacked

texts = st.text(min_size=1, max_size=40)
micros = st.integers(0, 2**53).map(str)


@given(texts, texts, texts, texts)
def test_two_claims_have_the_same_key_only_when_person_and_key_are_the_same(
    person_a: str, key_a: str, person_b: str, key_b: str
) -> None:
    same = claim_key(person_a, key_a) == claim_key(person_b, key_b)

    assert same == ((person_a, key_a) == (person_b, key_b))


@given(st.text(min_size=1, max_size=40), micros, micros, micros)
def test_a_kept_voucher_reads_back_as_it_was_issued(
    voucher_id: str, at: str, valid_from: str, valid_until: str
) -> None:
    kept = unpacked(packed(voucher_id, at, valid_from, valid_until))

    assert kept == (voucher_id, int(at), int(valid_from), int(valid_until))


def test_the_reference_rounds_126700_vouchers_take_under_32_mb() -> None:
    """A process keeps them all once every type is sold out (as tuples: ~70 MB)."""
    ids, count = RandomIds(), 126_700
    at_us = 1_646_445_600_000_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = {
            claim_key(f"p{i:07d}", f"p{i:07d}-0"): packed(
                ids.new_id("v"), str(at_us + i), str(at_us), str(at_us + 6 * 86_400_000_000)
            )
            for i in range(count)
        }
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert len(kept) == count
    assert held < 32 * 2**20, f"{held / count:.0f} bytes a voucher"
