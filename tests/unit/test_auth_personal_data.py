"""National ID and phone numbers: checked, normalised, kept only as keyed hashes, shown masked."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from xfq.api.auth.personal_data import (
    InvalidPersonalData,
    PersonalDataHasher,
    mask_national_id,
    mask_phone,
    normalize_national_id,
    normalize_phone,
)

KEY = b"k" * 32
# The worked example of GB 11643-1999, and one made for these tests ending in X.
STANDARD_ID = "11010519491231002X"
TAIYUAN_ID = "14010519900101923X"
MOBILE = "13812345678"


@pytest.mark.parametrize("valid", [STANDARD_ID, TAIYUAN_ID, "440524188001010014"])
def test_an_id_with_a_matching_check_digit_is_accepted(valid: str) -> None:
    assert normalize_national_id(valid) == valid


@pytest.mark.parametrize(
    "mistyped",
    [
        "110105194912310021",  # check digit wrong
        "110105194912310x2X",  # letter in the body
        "11010519491231003X",  # one digit mistyped
        "11010519491231020X",  # two digits swapped
    ],
)
def test_a_mistyped_id_is_refused(mistyped: str) -> None:
    with pytest.raises(InvalidPersonalData):
        normalize_national_id(mistyped)


@pytest.mark.parametrize(
    "malformed", ["", "1101051949123100", "11010519491231002XX", "110105-19491231-002X"]
)
def test_an_id_of_the_wrong_shape_is_refused(malformed: str) -> None:
    with pytest.raises(InvalidPersonalData, match="17 digits"):
        normalize_national_id(malformed)


def test_a_refusal_does_not_repeat_the_number_into_logs() -> None:
    for refuse, number in [
        (normalize_national_id, "110105194912310021"),
        (normalize_national_id, "1101051949123100"),
        (normalize_phone, "1381234567"),
    ]:
        with pytest.raises(InvalidPersonalData) as refused:
            refuse(number)
        assert number not in str(refused.value)


def test_an_id_whose_birth_date_is_not_a_real_day_is_refused() -> None:
    impossible = "110105194902300" + "01"  # 30 February
    check = next(c for c in "0123456789X" if _passes_checksum(impossible + c))

    with pytest.raises(InvalidPersonalData, match="birth date"):
        normalize_national_id(impossible + check)


def _passes_checksum(candidate: str) -> bool:
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    total = sum(int(d) * w for d, w in zip(candidate[:17], weights, strict=True))
    return "10X98765432"[total % 11] == candidate[17]


@pytest.mark.parametrize(
    "typed",
    ["11010519491231002x", " 110105 19491231 002X ", "１１０１０５１９４９１２３１００２ｘ"],
)
def test_ids_are_normalised_spaces_lower_case_x_and_full_width_digits(typed: str) -> None:
    assert normalize_national_id(typed) == STANDARD_ID


@pytest.mark.parametrize(
    "typed",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "008613812345678",
        "8613812345678",
        "(+86) 13812345678",
        "１３８１２３４５６７８",
    ],
)
def test_phone_numbers_are_normalised_to_eleven_digits(typed: str) -> None:
    assert normalize_phone(typed) == MOBILE


@pytest.mark.parametrize(
    "wrong", ["", "1381234567", "138123456789", "12812345678", "+1 138 1234 5678", "021-12345678"]
)
def test_numbers_that_are_not_mainland_mobiles_are_refused(wrong: str) -> None:
    with pytest.raises(InvalidPersonalData, match="11 digits"):
        normalize_phone(wrong)


def test_the_same_person_typed_differently_hashes_alike() -> None:
    hasher = PersonalDataHasher(KEY)

    assert hasher.hash_national_id("11010519491231002x") == hasher.hash_national_id(STANDARD_ID)
    assert hasher.hash_phone("+86 138-1234-5678") == hasher.hash_phone(MOBILE)


def test_hashes_keep_nothing_of_the_number_and_differ_per_person() -> None:
    hasher = PersonalDataHasher(KEY)
    hashed = hasher.hash_national_id(STANDARD_ID)

    assert len(hashed) == 64
    assert STANDARD_ID not in hashed
    assert hashed != hasher.hash_national_id(TAIYUAN_ID)


def test_another_key_gives_other_hashes() -> None:
    ours, theirs = PersonalDataHasher(KEY), PersonalDataHasher(b"j" * 32)

    assert ours.hash_national_id(STANDARD_ID) != theirs.hash_national_id(STANDARD_ID)
    assert ours.hash_phone(MOBILE) != theirs.hash_phone(MOBILE)


def test_stored_hashes_stay_stable_hmac_sha256_with_a_domain_prefix() -> None:
    # Changing this format would orphan every hash already stored.
    hasher = PersonalDataHasher(KEY)

    def expected(message: bytes) -> str:
        return hmac.new(KEY, message, hashlib.sha256).hexdigest()

    assert hasher.hash_phone(MOBILE) == expected(b"phone:13812345678")
    assert hasher.hash_national_id(STANDARD_ID) == expected(b"national_id:11010519491231002X")


def test_invalid_numbers_are_refused_before_hashing() -> None:
    hasher = PersonalDataHasher(KEY)

    with pytest.raises(InvalidPersonalData):
        hasher.hash_national_id("110105194912310021")
    with pytest.raises(InvalidPersonalData):
        hasher.hash_phone("12345")


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        PersonalDataHasher(b"secret")


def test_an_id_is_shown_with_only_its_first_and_last_four_characters() -> None:
    assert mask_national_id(TAIYUAN_ID) == "1401**********923X"
    assert mask_national_id("11010519491231002x") == "1101**********002X"


def test_a_phone_is_shown_with_only_its_first_three_and_last_four_digits() -> None:
    assert mask_phone("+86 138 1234 5678") == "138****5678"


def test_masking_refuses_what_is_not_a_valid_number_rather_than_echo_it() -> None:
    with pytest.raises(InvalidPersonalData):
        mask_national_id("not an id at all")
    with pytest.raises(InvalidPersonalData):
        mask_phone("12345")
