"""merchant API keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchant_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("key_id"),
    )
    with op.batch_alter_table("merchant_keys", schema=None) as batch_op:
        batch_op.create_index("ix_merchant_keys_merchant", ["merchant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("merchant_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_merchant_keys_merchant")
    op.drop_table("merchant_keys")
