"""Identifiers: random and unguessable, since a voucher id is something a person holds."""

from __future__ import annotations

import secrets


class RandomIds:
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_urlsafe(12)}"
