"""settlement days and lines, rollovers

Revision ID: 0005_money
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_money"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("closed_at_us", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.String(length=64), nullable=False),
        sa.Column("owed_fen", sa.BigInteger(), nullable=False),
        sa.Column("payable_fen", sa.BigInteger(), nullable=False),
        sa.Column("held_fen", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "settlement_lines",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("redemption_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("type_id", sa.String(length=64), nullable=False),
        sa.Column("order_ref", sa.String(length=128), nullable=False),
        sa.Column("order_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reversal_fen", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["day"], ["settlement_days.day"]),
        sa.ForeignKeyConstraint(["redemption_id"], ["redemptions.id"]),
        sa.PrimaryKeyConstraint("day", "redemption_id", "kind"),
    )
    op.create_index(
        "ix_settlement_lines_redemption", "settlement_lines", ["redemption_id"], unique=False
    )
    op.create_table(
        "rollovers",
        sa.Column("from_round", sa.String(length=64), nullable=False),
        sa.Column("from_type_id", sa.String(length=64), nullable=False),
        sa.Column("into_round", sa.String(length=64), nullable=False),
        sa.Column("into_type_id", sa.String(length=64), nullable=True),
        sa.Column("unclaimed", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.Column("added_count", sa.Integer(), nullable=False),
        sa.Column("remainder_fen", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("from_round", "from_type_id"),
    )


def downgrade() -> None:
    op.drop_table("rollovers")
    op.drop_index("ix_settlement_lines_redemption", table_name="settlement_lines")
    op.drop_table("settlement_lines")
    op.drop_table("settlement_days")
