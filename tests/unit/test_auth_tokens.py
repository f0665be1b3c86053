"""Bearer tokens: who gets in, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from xfq.api.auth.dev_issuer import DevIssuer, DevIssuerRefused, refuse_in_production
from xfq.api.auth.tokens import (
    ForbiddenRole,
    Identity,
    Role,
    TokenCode,
    TokenError,
    TokenVerifier,
    TrustedIssuer,
    require_role,
)
from xfq.domain.eligibility import Residency

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
CITY_IDP = "https://id.city.example"
ED25519_KEY = Ed25519PrivateKey.generate()


def _pem(private_key: PrivateKeyTypes) -> str:
    public = private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


CITY = TrustedIssuer(CITY_IDP, _pem(ED25519_KEY))
VERIFIER = TokenVerifier([CITY])


def _claims(drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CITY_IDP,
        "aud": "xfq",
        "sub": "person-1",
        "role": "citizen",
        "iat": NOW_S,
        "exp": NOW_S + 3600,
        "residency": "work",
        "in_city": True,
        "region": "140105",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if name not in drop}


def _token(claims: dict[str, Any], key: Any = ED25519_KEY, algorithm: str = "EdDSA") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _refusal(header: str | None, now: datetime = NOW, verifier: TokenVerifier = VERIFIER) -> str:
    with pytest.raises(TokenError) as refused:
        verifier.verify(header, now)
    assert refused.value.status == 401
    return refused.value.code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _handmade(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


# --- who gets in ---------------------------------------------------------------------------


def test_a_citizen_token_from_the_city_gives_the_identity_its_claims_describe() -> None:
    identity = VERIFIER.verify(f"Bearer {_token(_claims())}", NOW)

    assert identity == Identity(
        subject="person-1",
        role=Role.CITIZEN,
        residency=Residency.WORK,
        in_city=True,
        merchant_id=None,
        region="140105",
    )


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert VERIFIER.verify(f"bearer {_token(_claims())}", NOW).subject == "person-1"


def test_a_person_whose_presence_in_the_city_is_not_stated_counts_as_outside() -> None:
    identity = VERIFIER.verify(f"Bearer {_token(_claims(drop=('in_city', 'residency')))}", NOW)

    assert identity.in_city is False
    assert identity.residency is None


def test_a_merchant_staff_token_names_its_merchant() -> None:
    token = _token(_claims(role="merchant", sub="staff-7", merchant_id="m-42"))

    identity = VERIFIER.verify(f"Bearer {token}", NOW)

    assert (identity.role, identity.merchant_id) == (Role.MERCHANT, "m-42")


def test_a_merchant_id_on_a_citizen_token_is_ignored() -> None:
    identity = VERIFIER.verify(f"Bearer {_token(_claims(merchant_id='m-42'))}", NOW)

    assert identity.merchant_id is None


@pytest.mark.parametrize(
    ("private_key", "algorithm"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    ],
    ids=["ES256", "RS256"],
)
def test_issuers_signing_with_p256_or_rsa_are_trusted_too(
    private_key: PrivateKeyTypes, algorithm: str
) -> None:
    wallet = TrustedIssuer("wallet-app", _pem(private_key))
    verifier = TokenVerifier([CITY, wallet])
    token = _token(_claims(iss="wallet-app", sub="w-9"), private_key, algorithm)

    assert verifier.verify(f"Bearer {token}", NOW).subject == "w-9"


# --- times ---------------------------------------------------------------------------------


def test_a_token_is_accepted_until_thirty_seconds_of_leeway_after_it_expires() -> None:
    header = f"Bearer {_token(_claims(exp=NOW_S + 3600))}"
    expiry = NOW + timedelta(hours=1)

    assert VERIFIER.verify(header, expiry + timedelta(seconds=29)).subject == "person-1"
    assert _refusal(header, expiry + timedelta(seconds=30)) == TokenCode.TOKEN_EXPIRED


def test_a_token_long_expired_is_refused() -> None:
    assert _refusal(f"Bearer {_token(_claims(exp=NOW_S - 86400))}") == "token_expired"


def test_a_token_not_valid_before_a_later_moment_is_refused_until_then() -> None:
    header = f"Bearer {_token(_claims(nbf=NOW_S + 600))}"

    assert _refusal(header) == "token_not_yet_valid"
    assert VERIFIER.verify(header, NOW + timedelta(seconds=600)).subject == "person-1"


def test_a_small_clock_difference_with_the_issuer_is_tolerated() -> None:
    header = f"Bearer {_token(_claims(iat=NOW_S + 20, nbf=NOW_S + 20))}"

    assert VERIFIER.verify(header, NOW).subject == "person-1"


def test_a_token_issued_in_the_future_is_refused() -> None:
    assert _refusal(f"Bearer {_token(_claims(iat=NOW_S + 600))}") == "token_not_yet_valid"


def test_the_verifier_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VERIFIER.verify(f"Bearer {_token(_claims())}", NOW.replace(tzinfo=None))


# --- forged, foreign and unsigned tokens ---------------------------------------------------


def test_a_token_signed_by_another_key_in_the_city_s_name_is_refused() -> None:
    forged = _token(_claims(role="operator"), Ed25519PrivateKey.generate())

    assert _refusal(f"Bearer {forged}") == TokenCode.BAD_SIGNATURE


def test_a_citizen_who_edits_their_token_into_an_operator_s_is_refused() -> None:
    head, _, signature = _token(_claims()).split(".")
    payload = _b64(json.dumps(_claims(role="operator")).encode())

    assert _refusal(f"Bearer {head}.{payload}.{signature}") == "bad_signature"


def test_a_token_from_an_issuer_nobody_trusts_is_refused() -> None:
    stranger = Ed25519PrivateKey.generate()

    assert _refusal(f"Bearer {_token(_claims(iss='evil-idp'), stranger)}") == "unknown_issuer"


def test_a_token_without_an_issuer_is_refused() -> None:
    assert _refusal(f"Bearer {_token(_claims(drop=('iss',)))}") == "unknown_issuer"


def test_a_token_signed_by_another_trusted_issuer_s_key_is_refused() -> None:
    wallet_key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier([CITY, TrustedIssuer("wallet-app", _pem(wallet_key))])

    assert _refusal(f"Bearer {_token(_claims(), wallet_key)}", verifier=verifier) == (
        "bad_signature"
    )


def test_an_unsigned_token_with_alg_none_is_refused() -> None:
    unsigned = _handmade({"alg": "none", "typ": "JWT"}, _claims(role="operator"), b"")

    assert _refusal(f"Bearer {unsigned}") == "bad_signature"


def test_an_hs256_token_keyed_with_the_public_key_text_is_refused() -> None:
    header = {"alg": "HS256", "typ": "JWT"}
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(_claims(role="operator")).encode())
    mac = hmac.new(CITY.public_key_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256)

    assert _refusal(f"Bearer {head}.{body}.{_b64(mac.digest())}") == "bad_signature"


def test_a_token_for_another_audience_is_refused() -> None:
    assert _refusal(f"Bearer {_token(_claims(aud='other-app'))}") == "wrong_audience"


# --- the header itself ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_request_without_a_token_is_refused(header: str | None) -> None:
    assert _refusal(header) == "missing_token"


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer not-a-jwt", "Bearer a.b.c"],
)
def test_a_header_that_is_not_a_bearer_jwt_is_refused(header: str) -> None:
    assert _refusal(header) == "malformed_token"


def test_an_oversized_token_is_refused_unread() -> None:
    assert _refusal(f"Bearer {'a' * 9000}") == "malformed_token"


# --- claims --------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "role"])
def test_a_token_missing_a_required_claim_is_refused(claim: str) -> None:
    assert _refusal(f"Bearer {_token(_claims(drop=(claim,)))}") == TokenCode.BAD_CLAIMS


@pytest.mark.parametrize("role", ["superuser", "Operator", "", 3, ["operator"]])
def test_a_role_outside_the_four_known_roles_is_refused(role: object) -> None:
    assert _refusal(f"Bearer {_token(_claims(role=role))}") == "bad_claims"


@pytest.mark.parametrize(
    "changes",
    [
        {"residency": "tourist"},
        {"in_city": "yes"},
        {"sub": ""},
        {"exp": "tomorrow"},
        {"exp": True},
        {"region": 140105},
    ],
)
def test_claims_of_the_wrong_kind_are_refused(changes: dict[str, Any]) -> None:
    assert _refusal(f"Bearer {_token(_claims(**changes))}") == "bad_claims"


def test_a_merchant_token_without_its_merchant_is_refused() -> None:
    assert _refusal(f"Bearer {_token(_claims(role='merchant'))}") == "bad_claims"


# --- roles ---------------------------------------------------------------------------------


def test_an_identity_with_an_allowed_role_passes() -> None:
    operator = VERIFIER.verify(f"Bearer {_token(_claims(role='operator'))}", NOW)

    assert require_role(operator, Role.OPERATOR, Role.AUDITOR) is operator


def test_a_citizen_is_forbidden_where_operators_are_required() -> None:
    citizen = VERIFIER.verify(f"Bearer {_token(_claims())}", NOW)

    with pytest.raises(ForbiddenRole) as refused:
        require_role(citizen, Role.OPERATOR, Role.AUDITOR)

    assert (refused.value.status, refused.value.code) == (403, "forbidden_role")


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithms", [("HS256",), ("EdDSA", "none"), ()])
def test_only_public_key_algorithms_can_be_trusted(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="public-key algorithms"):
        TrustedIssuer(CITY_IDP, CITY.public_key_pem, algorithms=algorithms)


def test_an_issuer_whose_key_cannot_verify_its_algorithms_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot verify"):
        TokenVerifier([TrustedIssuer(CITY_IDP, CITY.public_key_pem, algorithms=("RS256",))])


def test_an_issuer_with_a_weak_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    with pytest.raises(ValueError, match="2048 bits"):
        TokenVerifier([TrustedIssuer("old-idp", _pem(weak), algorithms=("RS256",))])


def test_two_trusted_issuers_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="share one name"):
        TokenVerifier([CITY, TrustedIssuer(CITY_IDP, _pem(Ed25519PrivateKey.generate()))])


# --- the development issuer ----------------------------------------------------------------


def test_the_development_issuer_signs_tokens_its_own_verifier_accepts() -> None:
    dev = DevIssuer(environment="development")
    verifier = TokenVerifier([dev.trusted()])
    token = dev.token("staff-1", Role.MERCHANT, NOW, merchant_id="m-1", residency=None)

    identity = verifier.verify(f"Bearer {token}", NOW + timedelta(minutes=59))

    assert (identity.subject, identity.role, identity.merchant_id) == ("staff-1", "merchant", "m-1")
    assert _refusal(f"Bearer {token}", NOW + timedelta(hours=2), verifier) == "token_expired"


def test_another_development_issuer_s_tokens_are_not_trusted() -> None:
    ours, theirs = DevIssuer(environment="development"), DevIssuer(environment="development")
    token = theirs.token("person-1", Role.OPERATOR, NOW)

    assert _refusal(f"Bearer {token}", verifier=TokenVerifier([ours.trusted()])) == (
        "bad_signature"
    )


@pytest.mark.parametrize("environment", ["production", "staging", "Development", ""])
def test_the_development_issuer_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(DevIssuerRefused):
        refuse_in_production(environment)
    with pytest.raises(DevIssuerRefused):
        DevIssuer(environment=environment)
