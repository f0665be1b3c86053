"""Bearer JWTs of citizens, merchants' staff, operators and auditors, verified offline.

Each identity provider we trust is a `TrustedIssuer`: its name, its public key and the
asymmetric algorithms it signs with. `TokenVerifier.verify` picks the issuer by the token's
`iss`, checks the signature with that issuer's key only, then checks times against the `now`
it is given (never the clock) and maps the claims to an `Identity`.

Every refusal is an `AuthError` with a stable `code` and the HTTP `status` to answer with.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeAlias

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from xfq.domain.eligibility import Residency

DEFAULT_ALGORITHMS = ("EdDSA", "ES256", "RS256")
DEFAULT_LEEWAY = timedelta(seconds=30)
MAX_TOKEN_CHARS = 8192
MAX_SUBJECT_CHARS = 128
MIN_RSA_BITS = 2048
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
# Only public-key algorithms: an HS* entry would let anyone holding the public key sign.
_ASYMMETRIC = frozenset(
    {"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
_EC_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})

PublicKey: TypeAlias = (
    ed25519.Ed25519PublicKey | ed448.Ed448PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
)
_PUBLIC_KEY_TYPES = (
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    ec.EllipticCurvePublicKey,
    rsa.RSAPublicKey,
)


class AuthError(Exception):
    """A request's identity was refused. The API answers `status` with `code` and `detail`."""

    def __init__(self, code: str, detail: str, status: int = 401) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


class TokenCode(StrEnum):
    MISSING_TOKEN = "missing_token"
    MALFORMED_TOKEN = "malformed_token"
    UNKNOWN_ISSUER = "unknown_issuer"
    BAD_SIGNATURE = "bad_signature"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    WRONG_AUDIENCE = "wrong_audience"
    BAD_CLAIMS = "bad_claims"


class TokenError(AuthError):
    """A bearer token was missing or refused (401)."""

    def __init__(self, code: TokenCode, detail: str) -> None:
        super().__init__(code, detail, status=401)


class ForbiddenRole(AuthError):
    """A valid identity whose role may not do this (403)."""

    def __init__(self, detail: str) -> None:
        super().__init__("forbidden_role", detail, status=403)


class Role(StrEnum):
    CITIZEN = "citizen"
    MERCHANT = "merchant"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    DESK = "desk"  # staff at a service desk or bank counter: claim for a person after an ID check


_ROLES = frozenset(r.value for r in Role)
_RESIDENCIES = frozenset(r.value for r in Residency)


@dataclass(frozen=True, slots=True)  # slots: a worker may keep 100,000s (token cache)
class Identity:
    subject: str
    role: Role
    residency: Residency | None
    in_city: bool
    merchant_id: str | None
    region: str | None


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    public_key_pem: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    audience: str = "xfq"

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("a trusted issuer needs a name and an audience")
        refused = set(self.algorithms) - _ASYMMETRIC
        if refused or not self.algorithms:
            raise ValueError(
                f"issuer {self.issuer!r}: only public-key algorithms may be trusted, "
                f"got {sorted(refused) or 'none'}"
            )


def require_role(identity: Identity, *roles: Role) -> Identity:
    """`identity` back when its role is one of `roles`; `ForbiddenRole` otherwise."""
    if identity.role not in roles:
        allowed = ", ".join(roles)
        raise ForbiddenRole(f"role {identity.role!r} may not do this (allowed: {allowed})")
    return identity


@dataclass(frozen=True)
class _Verification:
    issuer: TrustedIssuer
    key: PublicKey
    algorithms: tuple[str, ...]


class TokenVerifier:
    def __init__(self, issuers: list[TrustedIssuer], leeway: timedelta = DEFAULT_LEEWAY) -> None:
        if len({i.issuer for i in issuers}) != len(issuers):
            raise ValueError("two trusted issuers share one name")
        self._by_name = {i.issuer: _prepare(i) for i in issuers}
        self._leeway_s = leeway.total_seconds()

    def verify(self, authorization_header: str | None, now: datetime) -> Identity:
        """The identity a `Bearer <jwt>` header proves at `now`, or a `TokenError`."""
        now_s = _epoch_seconds(now)
        token = _bearer_token(authorization_header)
        verification = self._by_name.get(_unverified_issuer(token))
        if verification is None:
            raise TokenError(TokenCode.UNKNOWN_ISSUER, "the token's issuer is not trusted")
        claims = _decode(token, verification)
        _check_times(claims, now_s, self._leeway_s)
        return _identity(claims)


def _prepare(issuer: TrustedIssuer) -> _Verification:
    """Bind the issuer's algorithms to its key's type, so a token cannot pick another one."""
    key = load_pem_public_key(issuer.public_key_pem.encode())
    if not isinstance(key, _PUBLIC_KEY_TYPES):
        raise ValueError(f"issuer {issuer.issuer!r}: unsupported key type {type(key).__name__}")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"issuer {issuer.issuer!r}: RSA keys need {MIN_RSA_BITS} bits or more")
    usable = tuple(a for a in issuer.algorithms if a in _key_algorithms(key))
    if not usable:
        raise ValueError(
            f"issuer {issuer.issuer!r}: its {type(key).__name__} cannot verify any of "
            f"{list(issuer.algorithms)}"
        )
    return _Verification(issuer, key, usable)


def _key_algorithms(key: PublicKey) -> frozenset[str]:
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_CURVE_ALGORITHMS.get(key.curve.name)
        return frozenset({algorithm} if algorithm else ())
    return _RSA_ALGORITHMS


def _epoch_seconds(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.timestamp()


def _bearer_token(header: str | None) -> str:
    if header is None or not header.strip():
        raise TokenError(TokenCode.MISSING_TOKEN, "an Authorization: Bearer token is required")
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise TokenError(TokenCode.MALFORMED_TOKEN, "expected 'Authorization: Bearer <token>'")
    if len(parts[1]) > MAX_TOKEN_CHARS:
        raise TokenError(TokenCode.MALFORMED_TOKEN, "the token is too long")
    return parts[1]


def _unverified_issuer(token: str) -> str:
    """Only to choose which key to verify with; nothing else is read before the signature.

    Read by hand rather than with a second `jwt.decode`: PyJWT's decode checks every character
    in Python and costs ~0.1 ms, and the verifying decode that follows checks it all again.
    """
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three segments")
        segment = parts[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        if not isinstance(claims, dict):
            raise ValueError("the payload is not an object")
    except (ValueError, UnicodeDecodeError):
        raise TokenError(TokenCode.MALFORMED_TOKEN, "the token is not a readable JWT") from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise TokenError(TokenCode.UNKNOWN_ISSUER, "the token names no issuer")
    return issuer


def _decode(token: str, verification: _Verification) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            key=verification.key,
            algorithms=list(verification.algorithms),
            audience=verification.issuer.audience,
            issuer=verification.issuer.issuer,
            # PyJWT compares times with its own clock; we check them against `now` below.
            options={
                "require": _REQUIRED_CLAIMS,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as error:
        raise _token_error(error) from None


def _token_error(error: jwt.PyJWTError) -> TokenError:
    # Order matters: InvalidSignatureError is a DecodeError.
    if isinstance(
        error, jwt.InvalidSignatureError | jwt.InvalidAlgorithmError | jwt.InvalidKeyError
    ):
        return TokenError(TokenCode.BAD_SIGNATURE, "the token's signature does not verify")
    if isinstance(error, jwt.MissingRequiredClaimError):
        return TokenError(TokenCode.BAD_CLAIMS, f"the token has no {error.claim!r} claim")
    if isinstance(error, jwt.InvalidAudienceError):
        return TokenError(TokenCode.WRONG_AUDIENCE, "the token is meant for another audience")
    if isinstance(error, jwt.DecodeError):
        return TokenError(TokenCode.MALFORMED_TOKEN, "the token is not a readable JWT")
    return TokenError(TokenCode.BAD_CLAIMS, f"the token's claims are invalid: {error}")


def _check_times(claims: Mapping[str, Any], now_s: float, leeway_s: float) -> None:
    expires_s = _numeric_date(claims, "exp")
    issued_s = _numeric_date(claims, "iat")
    not_before_s = _numeric_date(claims, "nbf") if "nbf" in claims else issued_s
    if now_s >= expires_s + leeway_s:
        raise TokenError(TokenCode.TOKEN_EXPIRED, "the token has expired")
    if max(issued_s, not_before_s) > now_s + leeway_s:
        raise TokenError(TokenCode.TOKEN_NOT_YET_VALID, "the token is not valid yet")


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(TokenCode.BAD_CLAIMS, f"the {name!r} claim must be a number of seconds")
    return float(value)


def _identity(claims: Mapping[str, Any]) -> Identity:
    role = _role(claims)
    merchant_id = _optional_str(claims, "merchant_id") if role is Role.MERCHANT else None
    if role is Role.MERCHANT and merchant_id is None:
        raise TokenError(TokenCode.BAD_CLAIMS, "a merchant token must name its merchant_id")
    return Identity(
        subject=_subject(claims),
        role=role,
        residency=_residency(claims),
        in_city=_in_city(claims),
        merchant_id=merchant_id,
        region=_optional_str(claims, "region"),
    )


def _subject(claims: Mapping[str, Any]) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
        raise TokenError(TokenCode.BAD_CLAIMS, "the 'sub' claim must be a short non-empty string")
    return subject


def _role(claims: Mapping[str, Any]) -> Role:
    value = claims.get("role")
    if value is None:
        raise TokenError(TokenCode.BAD_CLAIMS, "the token has no 'role' claim")
    if not isinstance(value, str) or value not in _ROLES:
        allowed = ", ".join(Role)
        raise TokenError(TokenCode.BAD_CLAIMS, f"the 'role' claim must be one of: {allowed}")
    return Role(value)


def _residency(claims: Mapping[str, Any]) -> Residency | None:
    value = claims.get("residency")
    if value is None:
        return None
    if not isinstance(value, str) or value not in _RESIDENCIES:
        allowed = ", ".join(Residency)
        raise TokenError(TokenCode.BAD_CLAIMS, f"the 'residency' claim must be one of: {allowed}")
    return Residency(value)


def _in_city(claims: Mapping[str, Any]) -> bool:
    # Absent means unknown, and unknown must not count as present in the city.
    value = claims.get("in_city", False)
    if not isinstance(value, bool):
        raise TokenError(TokenCode.BAD_CLAIMS, "the 'in_city' claim must be true or false")
    return value


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SUBJECT_CHARS:
        raise TokenError(TokenCode.BAD_CLAIMS, f"the {name!r} claim must be a short string")
    return value
