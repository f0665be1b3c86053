"""Claim-pass keys from the settings: shared by the workers, newest first, checked in production."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from xfq.bootstrap import pass_keys
from xfq.config import IssuerSetting, Settings, UnsafeSettings
from xfq.domain.claim_pass import key_id

TILL = b"t" * 32


def test_configured_keys_sign_with_the_first_and_verify_with_all() -> None:
    settings = Settings(claim_pass_keys=[SecretStr("n" * 32), SecretStr("o" * 32)])
    keys = pass_keys(settings, TILL)
    assert keys.signing_id == key_id(b"n" * 32)
    assert keys.key(key_id(b"o" * 32)) == b"o" * 32


def test_without_configured_keys_workers_sharing_the_till_key_share_the_pass_key() -> None:
    one, other = pass_keys(Settings(), TILL), pass_keys(Settings(), TILL)
    assert one.signing_id == other.signing_id
    assert one.signing_key != TILL  # derived, not the till key itself
    assert pass_keys(Settings(), b"x" * 32).signing_id != one.signing_id


def test_the_keys_come_from_the_environment_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFQ_CLAIM_PASS_KEYS", json.dumps(["n" * 32, "o" * 32]))
    assert pass_keys(Settings(), TILL).signing_id == key_id(b"n" * 32)


def test_production_refuses_a_short_pass_key() -> None:
    settings = Settings(
        environment="production",
        dev_issuer=False,
        issuers=[IssuerSetting(issuer="idp", public_key_pem="pem")],
        till_code_key=SecretStr("t" * 32),
        personal_data_key=SecretStr("p" * 32),
        claim_pass_keys=[SecretStr("short")],
    )
    with pytest.raises(UnsafeSettings, match="XFQ_CLAIM_PASS_KEYS"):
        settings.checked()
