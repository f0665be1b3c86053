"""drop ix_vouchers_person: uq_vouchers_claim (person_id, claim_key) serves the same lookups

Every claim paid for one more random B-tree insert into an index that the unique constraint's
own index, which leads with person_id, already answers.

Revision ID: 0008_lean_indexes (after 0007_fair)
Revises: 0007_fair
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0008_lean_indexes"
down_revision = "0007_fair"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_vouchers_person", table_name="vouchers")


def downgrade() -> None:
    op.create_index("ix_vouchers_person", "vouchers", ["person_id"], unique=False)
