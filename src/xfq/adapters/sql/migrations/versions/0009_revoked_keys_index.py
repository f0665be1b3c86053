"""index the revoked merchant keys: every API worker reads them once a second

A partial index (`WHERE revoked_at_us IS NOT NULL`, on SQLite and PostgreSQL alike): the
per-second read of the revoked keys no longer scans every key, and issuing a key, which leaves
`revoked_at_us` empty, adds nothing to the index.

Revision ID: 0009_revoked_keys_index (after 0008_lean_indexes)
Revises: 0008_lean_indexes
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_revoked_keys_index"
down_revision = "0008_lean_indexes"
branch_labels = None
depends_on = None

REVOKED = sa.text("revoked_at_us IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_merchant_keys_revoked",
        "merchant_keys",
        ["revoked_at_us"],
        unique=False,
        sqlite_where=REVOKED,
        postgresql_where=REVOKED,
    )


def downgrade() -> None:
    op.drop_index("ix_merchant_keys_revoked", table_name="merchant_keys")
