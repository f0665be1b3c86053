"""The audit chain: any edit, deletion, reordering or insertion breaks it at a named entry;
a digest published earlier catches entries cut off the end."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from xfq.domain.audit import (
    GENESIS_HASH,
    AuditDetailsInvalid,
    AuditEntry,
    UnknownAuditAction,
    compare_digest,
    daily_digest,
    entry_hash,
    next_entry,
    verify_chain,
)

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2022, 3, 5, 9, 0, tzinfo=TZ)


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    actions = ["merchant.enrolled", "merchant.approved", "round.opened", "merchant.suspended"]
    for i in range(n):
        last = entries[-1] if entries else None
        at = START + timedelta(hours=5 * i)
        details = {"i": i, "name": f"店{i}", "fen": 100 * i}
        entries.append(next_entry(last, "op1", actions[i % 4], f"m{i}", details, at))
    return entries


def resealed(e: AuditEntry, **changes: object) -> AuditEntry:
    """An entry changed and given a fresh hash of its own, as a careful forger would."""
    changed = dataclasses.replace(e, **changes)  # type: ignore[arg-type]
    digest = entry_hash(
        changed.seq,
        changed.at_us,
        changed.actor,
        changed.action,
        changed.subject,
        changed.details_json,
        changed.prev_hash,
    )
    return dataclasses.replace(changed, hash=digest)


def test_an_untouched_chain_verifies_and_starts_from_the_genesis_hash() -> None:
    entries = chain(6)
    assert verify_chain(entries) is None
    assert entries[0].seq == 1 and entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


def test_the_hash_is_sha256_over_canonical_json_anyone_can_recompute() -> None:
    import hashlib

    e = chain(1)[0]
    assert e.details_json == '{"fen":0,"i":0,"name":"店0"}'
    details = json.dumps(e.details_json, ensure_ascii=False)
    sealed = (
        f'{{"action":"merchant.enrolled","actor":"op1","at_us":{e.at_us},"details":{details},'
        f'"prev_hash":"{GENESIS_HASH}","seq":1,"subject":"m0"}}'
    )
    assert hashlib.sha256(sealed.encode()).hexdigest() == e.hash


def test_an_edited_entry_is_named() -> None:
    entries = chain(6)
    entries[2] = dataclasses.replace(entries[2], details_json='{"fen":999999}')
    broken = verify_chain(entries)
    assert broken is not None and broken.seq == 3 and "edited" in str(broken)


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = chain(6)
    entries[2] = resealed(entries[2], actor="someone-else")
    broken = verify_chain(entries)
    assert broken is not None and broken.seq == 4


def test_a_deleted_entry_is_named() -> None:
    entries = chain(6)
    del entries[3]
    broken = verify_chain(entries)
    assert broken is not None and broken.seq == 4 and "missing" in broken.reason


def test_a_deleted_entry_with_the_rest_renumbered_and_resealed_still_breaks() -> None:
    entries = chain(6)
    del entries[3]
    tail = [resealed(e, seq=e.seq - 1) for e in entries[3:]]
    broken = verify_chain(entries[:3] + tail)
    assert broken is not None and broken.seq == 4


def test_reordered_entries_are_named() -> None:
    entries = chain(6)
    entries[1], entries[2] = entries[2], entries[1]
    broken = verify_chain(entries)
    assert broken is not None and broken.seq == 2


def test_swapping_sequence_numbers_is_an_edit() -> None:
    entries = chain(6)
    a, b = entries[1], entries[2]
    entries[1] = dataclasses.replace(b, seq=2)
    entries[2] = dataclasses.replace(a, seq=3)
    broken = verify_chain(entries)
    assert broken is not None and broken.seq == 2 and "edited" in broken.reason


def test_an_inserted_entry_is_named() -> None:
    entries = chain(6)
    forged = next_entry(entries[2], "intruder", "merchant.approved", "m99", {}, START)
    later = [resealed(e, seq=e.seq + 1) for e in entries[3:]]
    broken = verify_chain([*entries[:3], forged, *later])
    assert broken is not None and broken.seq == 5 and "inserted" in broken.reason


def test_a_repeated_entry_is_named() -> None:
    entries = chain(4)
    broken = verify_chain([*entries, entries[-1]])
    assert broken is not None and broken.seq == 4 and "repeated" in broken.reason


def test_a_cut_tail_is_a_valid_chain_but_the_published_digest_shows_it() -> None:
    entries = chain(12)  # five hours apart: entries 1-3 on 03-05, 4-7 on 03-06, ...
    day = date(2022, 3, 6)
    published = json.loads(daily_digest(entries, day, TZ).as_json())
    assert published["first_seq"] == 4 and published["count"] >= 4
    cut = entries[: published["last_seq"] - 1]
    assert verify_chain(cut) is None
    mismatches = compare_digest(published, daily_digest(cut, day, TZ))
    assert any(m.startswith("last_seq") for m in mismatches)
    assert any(m.startswith("last_hash") for m in mismatches)
    assert compare_digest(published, daily_digest(entries, day, TZ)) == []


def test_the_digest_is_deterministic_and_counts_actions_by_the_local_day() -> None:
    entries = chain(12)
    first = daily_digest(entries, date(2022, 3, 5), TZ).as_json()
    assert first == daily_digest(list(entries), date(2022, 3, 5), TZ).as_json()
    digest = json.loads(first)
    # 09:00, 14:00, 19:00 on 03-05 in Taiyuan; 00:00 belongs to 03-06
    assert digest["first_seq"] == 1 and digest["last_seq"] == 3 and digest["count"] == 3
    assert digest["actions"] == {
        "merchant.approved": 1,
        "merchant.enrolled": 1,
        "round.opened": 1,
    }
    assert digest["last_hash"] == entries[2].hash and digest["timezone"] == "Asia/Shanghai"


def test_a_quiet_day_still_commits_to_the_chain_head() -> None:
    entries = chain(3)
    quiet = daily_digest(entries, date(2022, 3, 9), TZ)
    assert quiet.count == 0 and quiet.first_seq is None and quiet.last_hash == entries[-1].hash
    assert daily_digest([], date(2022, 3, 9), UTC).last_hash == GENESIS_HASH


def test_details_that_cannot_be_encoded_exactly_are_refused() -> None:
    with pytest.raises(AuditDetailsInvalid, match=r"details\.amount: float"):
        next_entry(None, "op1", "rollover", "r6", {"amount": 1.5}, START)
    with pytest.raises(AuditDetailsInvalid, match="set"):
        next_entry(None, "op1", "rollover", "r6", {"ids": {"a"}}, START)


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(UnknownAuditAction, match=r"merchant\.aproved"):
        next_entry(None, "op1", "merchant.aproved", "m1", {}, START)
