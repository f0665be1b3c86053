"""The claim pass: one person, one round, a short life, the server's key (rotating)."""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from xfq.domain.claim_pass import (
    ClaimPass,
    PassKeys,
    PassProblem,
    PassRules,
    expiry,
    issue_pass,
    issuing_refusal,
    read_pass,
)
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.sealed import seal

OLD, NEW = b"o" * 32, b"n" * 32
KEYS = PassKeys([OLD])
OPENS = datetime(2022, 3, 5, 2, 0, tzinfo=UTC)
CLOSES = OPENS + timedelta(hours=14)
RULES = PassRules(lead=timedelta(minutes=30), lifetime=timedelta(hours=2), grace=timedelta(0))
ALICE = Citizen("alice", Residency.WORK, True, "xiaodian")
EXPIRES = OPENS + timedelta(hours=1)


def _pass(person: Citizen = ALICE, keys: PassKeys = KEYS, round_id: str = "r6") -> str:
    return issue_pass(keys, round_id, person, EXPIRES)


def _fields(token: str) -> tuple[str, list[str], str]:
    head, payload, mac = token.rsplit(".", 2)
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    return head, raw.split("\n"), mac


def _with_fields(token: str, fields: list[str]) -> str:
    head, _, mac = _fields(token)
    payload = base64.urlsafe_b64encode("\n".join(fields).encode()).rstrip(b"=").decode()
    return f"{head}.{payload}.{mac}"


def test_a_pass_carries_what_the_claim_decision_reads_of_its_person() -> None:
    read = read_pass(KEYS, _pass(), OPENS)
    assert read == ClaimPass("r6", ALICE, int(EXPIRES.timestamp()))
    assert read.refusal_for("r6") is None


def test_unknown_attributes_read_back_as_unknown() -> None:
    nobody = Citizen("bob", None, False, None)
    read = read_pass(KEYS, _pass(nobody), OPENS)
    assert isinstance(read, ClaimPass) and read.citizen == nobody


def test_a_pass_lapses_at_its_expiry_second_exactly() -> None:
    token = _pass()
    assert isinstance(read_pass(KEYS, token, EXPIRES - timedelta(microseconds=1)), ClaimPass)
    assert read_pass(KEYS, token, EXPIRES) is PassProblem.EXPIRED


def test_a_pass_is_for_its_own_round_only() -> None:
    read = read_pass(KEYS, _pass(round_id="r6"), OPENS)
    assert isinstance(read, ClaimPass)
    assert read.refusal_for("r7") is PassProblem.OTHER_ROUND


def test_a_pass_made_with_another_key_of_the_same_id_is_forged() -> None:
    head = _fields(_pass())[0]
    forged = issue_pass(PassKeys([b"x" * 32]), "r6", ALICE, EXPIRES)
    spliced = ".".join([head, *forged.rsplit(".", 2)[1:]])  # claims our key id
    assert read_pass(KEYS, spliced, OPENS) is PassProblem.FORGED


@pytest.mark.parametrize(
    ("index", "value"),
    [(0, "r7"), (1, "mallory"), (2, "permanent"), (3, "0"), (4, "other"), (5, "9999999999")],
)
def test_changing_any_field_breaks_the_signature(index: int, value: str) -> None:
    token = _pass()
    fields = _fields(token)[1]
    fields[index] = value
    assert read_pass(KEYS, _with_fields(token, fields), OPENS) is PassProblem.FORGED


def test_another_persons_signature_does_not_carry_over() -> None:
    mine, theirs = _pass(ALICE), _pass(Citizen("bob", Residency.PERMANENT, True))
    spliced = ".".join([*mine.rsplit(".", 2)[:2], theirs.rsplit(".", 2)[2]])
    assert read_pass(KEYS, spliced, OPENS) is PassProblem.FORGED


def test_keys_rotate_the_new_one_signs_and_the_old_one_still_verifies() -> None:
    before = _pass(keys=PassKeys([OLD]))
    rotated = PassKeys([NEW, OLD])
    after = _pass(keys=rotated)
    assert _fields(after)[0] != _fields(before)[0]  # a new key id
    assert isinstance(read_pass(rotated, before, OPENS), ClaimPass)
    assert isinstance(read_pass(rotated, after, OPENS), ClaimPass)
    retired = PassKeys([NEW])
    assert read_pass(retired, before, OPENS) is PassProblem.UNKNOWN_KEY
    assert read_pass(KEYS, after, OPENS) is PassProblem.UNKNOWN_KEY


@pytest.mark.parametrize(
    "token", ["", "XFQP1", "XFQP1..", "XFQ1.a.b", "hello world", "XFQP1.a.b", "x" * 600]
)
def test_garbage_is_refused_never_a_crash(token: str) -> None:
    assert isinstance(read_pass(KEYS, token, OPENS), PassProblem)


def test_passes_are_handed_out_from_the_lead_until_the_window_closes() -> None:
    lead = OPENS - RULES.lead
    assert issuing_refusal(OPENS, CLOSES, lead - timedelta(seconds=1), RULES) is not None
    assert issuing_refusal(OPENS, CLOSES, lead, RULES) is None
    assert issuing_refusal(OPENS, CLOSES, CLOSES - timedelta(seconds=1), RULES) is None
    assert issuing_refusal(OPENS, CLOSES, CLOSES, RULES) is not None


def test_a_pass_lives_its_lifetime_or_until_shortly_after_the_window() -> None:
    early = OPENS - timedelta(minutes=10)
    assert expiry(CLOSES, early, RULES) == early + RULES.lifetime
    graced = PassRules(RULES.lead, RULES.lifetime, grace=timedelta(minutes=1))
    late = CLOSES - timedelta(minutes=5)
    assert expiry(CLOSES, late, graced) == CLOSES + timedelta(minutes=1)


def test_a_field_with_a_line_feed_cannot_be_sealed() -> None:
    with pytest.raises(ValueError, match="line feed"):
        _pass(Citizen("a\nb", None, False))


@pytest.mark.parametrize("key", [b"k" * 32, b"", b"long" * 40])
def test_the_mac_is_hmac_sha256(key: bytes) -> None:
    token = seal(key, "H", ["a", "b"])
    head, payload, mac = token.rsplit(".", 2)
    expected = hmac.digest(key, f"{head}.{payload}".encode(), "sha256")[:16]
    assert base64.urlsafe_b64decode(mac + "==") == expected
