"""lottery rounds and registrations, household members, quota pools of vouchers

Revision ID: 0007_fair (after 0006_integrity)
Revises: 0005_money
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_fair"
down_revision = "0006_integrity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lottery_rounds",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("seed_hex", sa.String(length=64), nullable=False),
        sa.Column("seed_sha256", sa.String(length=64), nullable=False),
        sa.Column("committed_at_us", sa.BigInteger(), nullable=False),
        sa.Column("committed_by", sa.String(length=64), nullable=False),
        sa.Column("frozen_at_us", sa.BigInteger(), nullable=True),
        sa.Column("registrations_sha256", sa.String(length=64), nullable=True),
        sa.Column("drawn_at_us", sa.BigInteger(), nullable=True),
        sa.Column("draw_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("round_id"),
    )
    op.create_table(
        "lottery_registrations",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("type_id", sa.String(length=64), nullable=False),
        sa.Column("registered_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("round_id", "person_id", "type_id"),
    )
    op.create_table(
        "household_members",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("head_id", sa.String(length=64), nullable=False),
        sa.Column("declared_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_index("ix_household_members_head", "household_members", ["head_id"])
    op.create_table(
        "voucher_pools",
        sa.Column("voucher_id", sa.String(length=32), nullable=False),
        sa.Column("pool", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("voucher_id"),
    )


def downgrade() -> None:
    op.drop_table("voucher_pools")
    op.drop_index("ix_household_members_head", table_name="household_members")
    op.drop_table("household_members")
    op.drop_table("lottery_registrations")
    op.drop_table("lottery_rounds")
