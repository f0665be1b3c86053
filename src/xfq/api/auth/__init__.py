"""Who is calling: bearer tokens, merchants' signed requests, and personal data kept hashed.

Framework-free: every check takes plain values (header strings, bytes, an aware `now`) and
returns a value or raises an `AuthError` carrying a stable `code` and the HTTP `status`.

    AuthError
    ├── TokenError          401  missing_token, malformed_token, unknown_issuer, bad_signature,
    │                            token_expired, token_not_yet_valid, wrong_audience, bad_claims
    ├── ForbiddenRole       403  forbidden_role
    └── SignatureError      401  missing_signature_headers, unknown_key, malformed_timestamp,
        │                        stale_timestamp, future_timestamp, malformed_nonce,
        │                        bad_signature, replayed_nonce
        └── NonceStoreFull  429  nonce_store_full (with retry_after_s)
"""

from xfq.api.auth.dev_issuer import DevIssuer, DevIssuerRefused, refuse_in_production
from xfq.api.auth.merchant_signature import (
    InMemoryNonceStore,
    NonceStore,
    NonceStoreFull,
    SignatureCode,
    SignatureError,
    SignatureVerifier,
    sign,
    signed_headers,
)
from xfq.api.auth.personal_data import (
    InvalidPersonalData,
    PersonalDataHasher,
    mask_national_id,
    mask_phone,
)
from xfq.api.auth.tokens import (
    AuthError,
    ForbiddenRole,
    Identity,
    Role,
    TokenCode,
    TokenError,
    TokenVerifier,
    TrustedIssuer,
    require_role,
)

__all__ = [
    "AuthError",
    "DevIssuer",
    "DevIssuerRefused",
    "ForbiddenRole",
    "Identity",
    "InMemoryNonceStore",
    "InvalidPersonalData",
    "NonceStore",
    "NonceStoreFull",
    "PersonalDataHasher",
    "Role",
    "SignatureCode",
    "SignatureError",
    "SignatureVerifier",
    "TokenCode",
    "TokenError",
    "TokenVerifier",
    "TrustedIssuer",
    "mask_national_id",
    "mask_phone",
    "refuse_in_production",
    "require_role",
    "sign",
    "signed_headers",
]
