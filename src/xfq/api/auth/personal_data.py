"""National ID and mobile numbers: stored only as keyed hashes, shown only masked.

A keyed hash (HMAC-SHA256) lets xfq recognise the same person again without keeping the
number: without the key, the 10^11 possible phone numbers cannot be hashed to find a match.
Inputs are normalised first, so "138 1234-5678" and "+8613812345678" hash alike.
Error messages never repeat the number they refuse, since they may end up in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from datetime import date

MIN_KEY_BYTES = 32
_NATIONAL_ID = re.compile(r"[0-9]{17}[0-9X]")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")
# ISO 7064 MOD 11-2 weights of the first 17 digits: 2^(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "10X98765432"


class InvalidPersonalData(ValueError):
    """A national ID or phone number that is not well formed."""


def normalize_national_id(raw: str) -> str:
    """The 18-character resident ID in `raw`, validated; `InvalidPersonalData` otherwise."""
    # NFKC turns full-width digits and Ｘ, common from Chinese input methods, into ASCII.
    text = "".join(unicodedata.normalize("NFKC", raw).split()).upper()
    if not _NATIONAL_ID.fullmatch(text):
        raise InvalidPersonalData("a national ID has 17 digits and then a digit or X")
    if not _is_calendar_date(text[6:14]):
        raise InvalidPersonalData("the national ID's birth date is not a real date")
    if _id_check_char(text[:17]) != text[17]:
        raise InvalidPersonalData(
            "the national ID's check digit does not match; please re-check it"
        )
    return text


def normalize_phone(raw: str) -> str:
    """The 11-digit mainland mobile number in `raw`; `InvalidPersonalData` otherwise."""
    text = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    for prefix in ("+86", "0086", "86"):
        if text.startswith(prefix) and len(text) == len(prefix) + 11:
            text = text[len(prefix) :]
            break
    if not _MOBILE.fullmatch(text):
        raise InvalidPersonalData("a mainland mobile number has 11 digits starting 13-19")
    return text


def mask_national_id(raw: str) -> str:
    """E.g. "1401**********123X": the first 4 and last 4 characters of a valid ID."""
    text = normalize_national_id(raw)
    return f"{text[:4]}{'*' * 10}{text[-4:]}"


def mask_phone(raw: str) -> str:
    """E.g. "138****5678": the first 3 and last 4 digits of a valid mobile number."""
    text = normalize_phone(raw)
    return f"{text[:3]}****{text[-4:]}"


class PersonalDataHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the personal-data key must have at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def hash_national_id(self, raw: str) -> str:
        return self._mac("national_id:", normalize_national_id(raw))

    def hash_phone(self, raw: str) -> str:
        return self._mac("phone:", normalize_phone(raw))

    def _mac(self, domain: str, normalized: str) -> str:
        # The domain prefix keeps an ID and a phone number from ever hashing alike.
        return hmac.new(self._key, (domain + normalized).encode(), hashlib.sha256).hexdigest()


def _id_check_char(first_17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first_17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def _is_calendar_date(yyyymmdd: str) -> bool:
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return True
