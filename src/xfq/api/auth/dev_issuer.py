"""A development identity provider for the demo and tests: an Ed25519 key made in memory.

It signs any identity it is asked for, so it must never be trusted outside development;
constructing one anywhere else raises `DevIssuerRefused`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import SecretStr

from xfq.api.auth.tokens import Role, TrustedIssuer

DEV_ISSUER = "xfq-dev"
DEVELOPMENT = "development"


class DevIssuerRefused(RuntimeError):
    """The development issuer was asked for outside the development environment."""


def refuse_in_production(environment: str) -> None:
    """Raise unless `environment` is exactly "development"."""
    if environment != DEVELOPMENT:
        raise DevIssuerRefused(
            f"the development identity issuer signs any identity and is only allowed when "
            f"environment is {DEVELOPMENT!r}, not {environment!r}"
        )


class DevIssuer:
    issuer = DEV_ISSUER

    def __init__(
        self, *, environment: str, audience: str = "xfq", private_key_pem: SecretStr | None = None
    ) -> None:
        refuse_in_production(environment)
        self.audience = audience
        self._key = Ed25519PrivateKey.generate()
        if private_key_pem is not None:
            key = load_pem_private_key(private_key_pem.get_secret_value().encode(), None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("the development issuer's key must be an Ed25519 private key")
            self._key = key

    def private_key_pem(self) -> str:
        """The key as PKCS#8 PEM, for other processes of the same development server."""
        pem = self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return pem.decode()

    def trusted(self) -> TrustedIssuer:
        pem = self._key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return TrustedIssuer(
            self.issuer, pem.decode(), algorithms=("EdDSA",), audience=self.audience
        )

    def token(
        self,
        subject: str,
        role: Role,
        now: datetime,
        ttl: timedelta = timedelta(hours=1),
        residency: str | None = "permanent",
        in_city: bool = True,
        merchant_id: str | None = None,
        region: str | None = None,
    ) -> str:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "role": str(role),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "in_city": in_city,
        }
        optional = {"residency": residency, "merchant_id": merchant_id, "region": region}
        claims.update({name: value for name, value in optional.items() if value is not None})
        return jwt.encode(claims, self._key, algorithm="EdDSA")
